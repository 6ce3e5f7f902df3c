"""PickScore (Kirstain et al. 2023) on transformers' ``CLIPModel``: ``pickscore``.

PickScore(image, prompt) = logit_scale.exp() · cos(image_embeds, text_embeds), the raw
logit-scaled value (no softmax over candidates). The backbone embeds images and texts (the
projected, un-normalised ``get_image_features`` / ``get_text_features``) and exposes
``logit_scale`` (= ``model.logit_scale.exp()``); :func:`t2i_bench.metrics.functional.pickscore`
combines them.

``real``: model ``yuvalkirstain/PickScore_v1`` and processor
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (hub cache or local ``save_pretrained``
directories: ``weights=``/``T2I_BENCH_PICKSCORE``, ``processor=``/
``T2I_BENCH_PICKSCORE_PROCESSOR``; a local model directory holding a processor is used as
its own processor). Text is tokenised with padding, truncation at 77 tokens, as in the
PickScore reference code. ``tiny``: a small ``CLIPConfig``, seeded, with a
``CLIPImageProcessor`` at 64 px and a ``CLIPTokenizer`` built from open_clip's bundled CLIP
BPE vocabulary (the same 49,408-token vocabulary; no download).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
)

from t2i_bench.backbones._files import (
    PROCESSOR_FILES,
    expand,
    hf_model_folder,
    hf_weight_files,
    hub_optional_files,
    is_local,
    missing_hub_message,
    present,
    same_folder,
)
from t2i_bench.backbones._torch import (
    TINY_SEED,
    TorchBackbone,
    batched_forward,
    check_profile,
    describe_hf_processor,
    env_source,
    hf_load,
    seeded,
    weights_label,
)
from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.errors import BenchError

NAME = "pickscore"
VERSION = "1"
MODEL_ID = "yuvalkirstain/PickScore_v1"
PROCESSOR_ID = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_TEXT_TOKENS = 77

TINY_CONFIG: dict[str, Any] = {
    "projection_dim": 64,
    "logit_scale_init_value": 4.6052,  # ln(100), PickScore's trained scale is ~100
    "text_config": {
        "vocab_size": 49408,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 49407,
    },
    "vision_config": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 64,
        "patch_size": 8,
    },
}


@functools.lru_cache(maxsize=1)
def clip_bpe_tokenizer() -> CLIPTokenizer:
    """transformers' ``CLIPTokenizer`` over open_clip's bundled CLIP BPE vocabulary."""
    from open_clip.tokenizer import SimpleTokenizer

    st = SimpleTokenizer()
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {rename.get(token, token): idx for token, idx in st.encoder.items()}
    merges = [pair for pair, _ in sorted(st.bpe_ranks.items(), key=lambda kv: kv[1])]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TEXT_TOKENS)


def tiny_processor() -> CLIPProcessor:
    image = CLIPImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": 64, "width": 64},
        resample=3,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        do_convert_rgb=True,
    )
    return CLIPProcessor(image_processor=image, tokenizer=clip_bpe_tokenizer())


def build_tiny_pickscore(seed: int = TINY_SEED) -> CLIPModel:
    config = CLIPConfig(**TINY_CONFIG)
    with seeded(seed):
        model = CLIPModel(config)
    return model.eval()


def _pooled(out: Any) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class PickScoreBackbone(TorchBackbone):
    """CLIP image/text projections for PickScore; ``logit_scale`` is exp of the learned scale."""

    def __init__(
        self,
        model: CLIPModel,
        processor: Any,
        profile: str,
        weights: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.name, self.profile, self.weights = "pickscore", profile, weights
        self.logit_scale = float(model.logit_scale.detach().exp())  # read before moving
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.preprocessing = preprocessing(processor)
        self.feature_dim = int(model.config.projection_dim)

        self.text_forward_calls = 0

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        px = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        return px.to(self.device)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    def _prepare_texts(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.processor(
            text=list(texts),
            padding=True,
            truncation=True,
            max_length=MAX_TEXT_TOKENS,
            return_tensors="pt",
        )
        return {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask")}

    def _forward_texts(self, **inputs: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_text_features(**inputs))

    def _count_text(self) -> None:
        self.text_forward_calls += 1

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 text projections (padding per batch does not change them)."""
        if len(texts) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return batched_forward(
            list(texts), self.batch_size, self._prepare_texts, self._forward_texts, self._count_text
        )


@dataclass(frozen=True)
class PickScoreSource:
    """Where the real PickScore's files are, resolved without loading it."""

    model_folder: str
    processor_folder: str
    files: tuple[str, ...]
    label: str


MODEL_HINT = "set backbones.pickscore.weights (or T2I_BENCH_PICKSCORE) to a save_pretrained folder"
PUBLISHED_PROCESSOR_FILES = (
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)
PROC_HINT = (
    "set backbones.pickscore.processor (or T2I_BENCH_PICKSCORE_PROCESSOR) to a folder with "
    "the CLIP processor files"
)


def _processor_files(source: str) -> tuple[str, list[str]]:
    """(folder, files) of a CLIP processor: its config JSON and the tokenizer's files."""
    if is_local(source):
        folder = expand(source)
        files = present(folder, PROCESSOR_FILES)
    else:
        files = hub_optional_files(source, PROCESSOR_FILES)
        if not files:
            raise BenchError(missing_hub_message(source, PUBLISHED_PROCESSOR_FILES, PROC_HINT))
        folder = same_folder(files)
    names = {os.path.basename(f) for f in files}
    if not {"preprocessor_config.json", "processor_config.json"} & names:
        raise BenchError(
            f"PickScore processor: no preprocessor_config.json or processor_config.json "
            f"({PROC_HINT})",
            folder,
        )
    if not ({"tokenizer.json"} <= names or {"vocab.json", "merges.txt"} <= names):
        raise BenchError(
            f"PickScore processor: no tokenizer (tokenizer.json, or vocab.json and merges.txt; "
            f"{PROC_HINT})",
            folder,
        )
    return folder, files


def resolve_real(weights: str | None = None, processor: str | None = None) -> PickScoreSource:
    """The model folder (``weights``, ``T2I_BENCH_PICKSCORE``, else the published model's cache
    snapshot) and the processor folder (``processor``, ``T2I_BENCH_PICKSCORE_PROCESSOR``, the
    model folder when it holds a processor, else the published processor's snapshot)."""
    source = weights or env_source("T2I_BENCH_PICKSCORE", MODEL_ID) or MODEL_ID
    proc_source = processor or env_source("T2I_BENCH_PICKSCORE_PROCESSOR", None)
    if proc_source is None:
        local = os.path.expanduser(source)
        own = ("preprocessor_config.json", "processor_config.json")
        has_own = any(os.path.isfile(os.path.join(local, f)) for f in own)
        proc_source = local if has_own else PROCESSOR_ID
    folder = hf_model_folder(source, "PickScore model", MODEL_HINT)
    proc_folder, proc_files = _processor_files(proc_source)
    files = [os.path.join(folder, "config.json"), *hf_weight_files(folder, "PickScore", MODEL_HINT)]
    files += [f for f in proc_files if f not in files]
    label = source if source == MODEL_ID else weights_label(folder)
    if proc_source != PROCESSOR_ID:
        label += f"+processor:{weights_label(proc_folder)}"
    return PickScoreSource(folder, proc_folder, tuple(files), label)


def preprocessing(processor: Any) -> str:
    return (
        f"{describe_hf_processor(processor.image_processor)}; text: "
        f"{type(processor.tokenizer).__name__} padding, truncation at {MAX_TEXT_TOKENS}"
    )


def describe_pickscore(
    profile: str = "tiny", weights: str | None = None, processor: str | None = None
) -> BackboneSpec:
    """The static spec of ``pickscore``: the processor's settings come from its files."""
    check_profile(NAME, profile)
    if profile == "tiny":
        arch = f"transformers CLIPModel {json.dumps(TINY_CONFIG, sort_keys=True)}"
        return BackboneSpec(
            NAME, "tiny", VERSION, arch, preprocessing(tiny_processor()), f"seed={TINY_SEED}"
        )
    src = resolve_real(weights, processor)
    proc = hf_load(CLIPProcessor.from_pretrained, src.processor_folder, "PickScore processor")
    return BackboneSpec(
        NAME,
        "real",
        VERSION,
        "transformers CLIPModel (config.json)",
        preprocessing(proc),
        src.label,
        src.files,
        description=f"{MODEL_ID} + processor {PROCESSOR_ID}",
    )


def make_pickscore(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    processor: str | None = None,
) -> PickScoreBackbone:
    check_profile(NAME, profile)
    if profile == "tiny":
        return PickScoreBackbone(
            build_tiny_pickscore(),
            tiny_processor(),
            "tiny",
            f"seed={TINY_SEED}",
            device,
            batch_size,
        )
    src = resolve_real(weights, processor)
    model = hf_load(CLIPModel.from_pretrained, src.model_folder, "PickScore model")
    proc = hf_load(CLIPProcessor.from_pretrained, src.processor_folder, "PickScore processor")
    return PickScoreBackbone(model, proc, "real", src.label, device, batch_size)  # type: ignore[arg-type]


@register_backbone(NAME, describe=describe_pickscore)
def _pickscore(profile: str, device: str = "cpu", **options: Any) -> PickScoreBackbone:
    return make_pickscore(profile, device, **options)
