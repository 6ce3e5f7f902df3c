"""ImageReward (Xu et al. 2023) rebuilt on transformers' BLIP modules: ``image_reward``.

The published model (``THUDM/ImageReward``: ``ImageReward.pt`` + ``med_config.json``) is a
BLIP ViT-L/16 image encoder, a BERT text encoder with cross-attention to the image tokens
(BLIP's ``med``), and an MLP head on the text [CLS] state; the reward is
(mlp(h_cls) - 0.16717362830052426) / 1.0333394966054072. The image-reward package cannot be
installed beside open_clip and transformers 5, so this module maps its state dict onto
``BlipVisionModel`` + ``BlipTextModel`` (``is_decoder`` config for the cross-attention
layers, run bidirectionally) and a head with the package's layer indices.

Preprocessing follows the package: resize shortest side 224 (bicubic, PIL), center crop 224,
RGB, to [0,1], CLIP mean/std; prompts: BERT uncased WordPiece (``bert-base-uncased`` plus the
``[DEC]``/``[ENC]`` tokens BLIP adds), padding to 35 tokens, truncation.

The backbone embeds each image once (:meth:`embed_images`: the ViT's final token states,
flattened) and scores (image, prompt) pairs from those embeddings
(:meth:`score_embeddings`), or directly (:meth:`score`).

``real``: ``weights=`` / ``T2I_BENCH_IMAGEREWARD`` is ``ImageReward.pt`` or a directory holding
it and ``med_config.json`` (default: the hub repo through the cache); ``tokenizer=`` /
``T2I_BENCH_IMAGEREWARD_TOKENIZER`` a BERT tokenizer (default ``bert-base-uncased``; a
``vocab.txt`` beside the weights wins). ``tiny``: the same modules at width 64, a seeded init,
64 px images and a small character-level WordPiece vocabulary built in code.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T
from transformers import (
    BertTokenizer,
    BlipTextConfig,
    BlipTextModel,
    BlipVisionConfig,
    BlipVisionModel,
)

from t2i_bench.backbones._files import (
    TOKENIZER_FILES,
    brief,
    expand,
    hub_file,
    hub_optional_files,
    hub_snapshot,
    is_local,
    present,
)
from t2i_bench.backbones._torch import (
    TINY_SEED,
    TorchBackbone,
    batched_forward,
    check_profile,
    env_source,
    seeded,
    to_rgb,
    weights_label,
)
from t2i_bench.backbones.base import BackboneSpec, register_backbone
from t2i_bench.errors import BenchError

NAME = "image_reward"
VERSION = "1"
HUB_ID = "THUDM/ImageReward"
TOKENIZER_ID = "bert-base-uncased"
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_TEXT_TOKENS = 35
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_SIZES = (1024, 128, 64, 16, 1)
VISION_HEAD_DIM = 64  # BLIP ViT-B: 768/12, ViT-L: 1024/16
TINY_VISION = {"hidden_size": 64, "num_hidden_layers": 2, "image_size": 64, "patch_size": 16}
TINY_TEXT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
}


class RewardHead(torch.nn.Module):
    """ImageReward's MLP: Linear layers at the package's indices 0, 2, 4, 6, 7 (dropouts between,
    no activations), as ``layers.<i>``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        sizes = (in_features, *HEAD_SIZES)
        mods: list[torch.nn.Module] = []
        for i in range(len(HEAD_SIZES)):
            mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < 3:
                mods.append(torch.nn.Dropout(0.0))
        self.layers = torch.nn.Sequential(*mods)
        for name, p in self.layers.named_parameters():  # the package's init
            if name.endswith("weight"):
                torch.nn.init.normal_(p, mean=0.0, std=1.0 / (in_features + 1))
            else:
                torch.nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ImageRewardModel(torch.nn.Module):
    """BLIP vision + cross-attention text encoder + reward head."""

    def __init__(self, vision: BlipVisionConfig, text: BlipTextConfig) -> None:
        super().__init__()
        self.vision = BlipVisionModel(vision)
        self.text = BlipTextModel(text, add_pooling_layer=False)
        self.head = RewardHead(text.hidden_size)

    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=pixels).last_hidden_state

    def reward(
        self, tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        image_mask = torch.ones(tokens.shape[:-1], dtype=torch.long, device=tokens.device)
        out = self.text(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=tokens,
            encoder_attention_mask=image_mask,
            is_decoder=False,
        )
        raw = self.head(out.last_hidden_state[:, 0, :].float())[:, 0]
        return (raw - REWARD_MEAN) / REWARD_STD


def vision_config(hidden: int, layers: int, image_size: int, patch: int) -> BlipVisionConfig:
    return BlipVisionConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // VISION_HEAD_DIM),
        image_size=image_size,
        patch_size=patch,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        initializer_range=0.02,  # BLIP ViT's trunc-normal(0.02) (HF's default is 1e-10)
    )


def text_config(med: dict[str, Any], encoder_width: int) -> BlipTextConfig:
    """A ``BlipTextConfig`` from BLIP's ``med_config.json`` (a BERT config) + the ViT width."""
    return BlipTextConfig(
        vocab_size=med["vocab_size"],
        hidden_size=med["hidden_size"],
        encoder_hidden_size=encoder_width,
        intermediate_size=med["intermediate_size"],
        num_hidden_layers=med["num_hidden_layers"],
        num_attention_heads=med["num_attention_heads"],
        max_position_embeddings=med["max_position_embeddings"],
        hidden_act=med.get("hidden_act", "gelu"),
        layer_norm_eps=med.get("layer_norm_eps", 1e-12),
        pad_token_id=med.get("pad_token_id", 0),
        bos_token_id=med["vocab_size"] - 2,  # [DEC], added after the base vocabulary
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        is_decoder=True,  # builds the cross-attention layers; forward runs bidirectionally
    )


_VISION_RENAMES = [
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
    (r"^blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp."),
    (r"^norm\.", "post_layernorm."),
]


def convert_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ImageReward.pt keys (``blip.visual_encoder.*``, ``blip.text_encoder.*``, ``mlp.layers.*``)
    -> :class:`ImageRewardModel` keys. Unused BLIP parts (projections, position-id buffers)
    are dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith("blip.visual_encoder."):
            k = key[len("blip.visual_encoder.") :]
            for pattern, repl in _VISION_RENAMES:
                k, n = re.subn(pattern, repl, k)
                if n:
                    break
            out[f"vision.{k}"] = value
        elif key.startswith("blip.text_encoder."):
            k = key[len("blip.text_encoder.") :]
            if not k.endswith("position_ids"):
                out[f"text.{k}"] = value
        elif key.startswith("mlp.layers."):
            out[f"head.{key[len('mlp.') :]}"] = value
    return out


def vision_geometry(sd: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
    """(width, layers, image size, patch size) of the BLIP ViT in an ImageReward state dict,
    from tensor shapes only."""
    try:
        pos = sd["blip.visual_encoder.pos_embed"]
        patch = int(sd["blip.visual_encoder.patch_embed.proj.weight"].shape[-1])
    except KeyError as exc:
        raise BenchError(f"not an ImageReward checkpoint (missing {exc})") from exc
    hidden = int(pos.shape[-1])
    layers = 1 + max(
        int(k.split(".")[3]) for k in sd if k.startswith("blip.visual_encoder.blocks.")
    )
    grid = round((pos.shape[1] - 1) ** 0.5)
    return hidden, layers, grid * patch, patch


def model_from_checkpoint(sd: dict[str, torch.Tensor], med: dict[str, Any]) -> ImageRewardModel:
    """Build and load the model for an ImageReward state dict and its ``med_config``."""
    hidden, layers, image_size, patch = vision_geometry(sd)
    vcfg = vision_config(hidden, layers, image_size, patch)
    model = ImageRewardModel(vcfg, text_config(med, hidden))
    converted = convert_state_dict(sd)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise BenchError(
            f"ImageReward checkpoint does not fit: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return model.eval()


def blip_tokenizer(tok: BertTokenizer) -> BertTokenizer:
    """Add BLIP's ``[DEC]`` bos token and ``[ENC]`` special token, as BLIP's init_tokenizer."""
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


TINY_WORDS = "an the of in on with style photo painting toy dog cat cooking chef".split()


def tiny_tokenizer() -> BertTokenizer:
    """A small uncased WordPiece vocabulary (characters, continuations, a few words)."""
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,!?'-:;()\"&/")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    vocab += [f"##{c}" for c in chars if c.isalnum()] + TINY_WORDS
    return blip_tokenizer(BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}))


def build_tiny_image_reward(seed: int = TINY_SEED) -> tuple[ImageRewardModel, BertTokenizer]:
    tok = tiny_tokenizer()
    med = {**TINY_TEXT, "vocab_size": len(tok), "pad_token_id": 0}
    v = TINY_VISION
    vcfg = vision_config(v["hidden_size"], v["num_hidden_layers"], v["image_size"], v["patch_size"])
    with seeded(seed):
        model = ImageRewardModel(vcfg, text_config(med, v["hidden_size"]))
        # BLIP ViT init: class/position embeddings are trunc-normal(0.02), not HF's ~1e-10
        torch.nn.init.trunc_normal_(model.vision.embeddings.class_embedding, std=0.02)
        torch.nn.init.trunc_normal_(model.vision.embeddings.position_embedding, std=0.02)
        # the package's head init (std 1/(d+1) for all five layers) shrinks the output to
        # ~1e-7 of the input: use fan-in scaling so the tiny rewards depend on the image
        for layer in model.head.layers:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=layer.in_features**-0.5)
    return model.eval(), tok


def tiny_med_config(tok: BertTokenizer) -> dict[str, Any]:
    """The ``med_config.json`` content of the tiny model (for real-format round trips)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "type_vocab_size": 2,
        "add_cross_attention": True,
        "encoder_width": TINY_VISION["hidden_size"],
        "vocab_size": len(tok),
        **TINY_TEXT,
    }


def to_image_reward_state_dict(model: ImageRewardModel) -> dict[str, torch.Tensor]:
    """Our model's weights under ImageReward.pt's key names (inverse of the conversion)."""
    inverse = [
        (r"^embeddings\.class_embedding$", "cls_token"),
        (r"^embeddings\.position_embedding$", "pos_embed"),
        (r"^embeddings\.patch_embedding\.", "patch_embed.proj."),
        (r"^encoder\.layers\.(\d+)\.layer_norm1\.", r"blocks.\1.norm1."),
        (r"^encoder\.layers\.(\d+)\.layer_norm2\.", r"blocks.\1.norm2."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.qkv\.", r"blocks.\1.attn.qkv."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.projection\.", r"blocks.\1.attn.proj."),
        (r"^encoder\.layers\.(\d+)\.mlp\.", r"blocks.\1.mlp."),
        (r"^post_layernorm\.", "norm."),
    ]
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("vision."):
            k = key[len("vision.") :]
            for pattern, repl in inverse:
                k, n = re.subn(pattern, repl, k)
                if n:
                    break
            out[f"blip.visual_encoder.{k}"] = value
        elif key.startswith("text."):
            out[f"blip.text_encoder.{key[len('text.') :]}"] = value
        elif key.startswith("head."):
            out[f"mlp.{key[len('head.') :]}"] = value
    return out


WEIGHTS_HINT = (
    "set backbones.image_reward.weights (or T2I_BENCH_IMAGEREWARD) to ImageReward.pt or its folder"
)
TOKENIZER_HINT = (
    "set backbones.image_reward.tokenizer (or T2I_BENCH_IMAGEREWARD_TOKENIZER) to a folder "
    "with bert-base-uncased's vocab.txt"
)
CHECKPOINT_URL = f"https://huggingface.co/{HUB_ID}/blob/main/ImageReward.pt"


@dataclass(frozen=True)
class ImageRewardSource:
    """Where the real ImageReward's files are, resolved without loading it."""

    checkpoint: str
    med_config: str
    tokenizer_folder: str
    files: tuple[str, ...]
    label: str


def _tokenizer_files(source: str) -> tuple[str, list[str]]:
    if is_local(source):
        folder = expand(source)
        files = present(folder, TOKENIZER_FILES)
    else:
        folder = hub_snapshot(source, "vocab.txt", TOKENIZER_HINT)
        files = hub_optional_files(source, TOKENIZER_FILES)
    if not {"vocab.txt", "tokenizer.json"} & {os.path.basename(f) for f in files}:
        raise BenchError(
            f"no BERT tokenizer (vocab.txt or tokenizer.json; {TOKENIZER_HINT})", folder
        )
    return folder, files


def resolve_real(weights: str | None = None, tokenizer: str | None = None) -> ImageRewardSource:
    """``ImageReward.pt`` and ``med_config.json`` (``weights``: the file or its folder;
    ``T2I_BENCH_IMAGEREWARD``; else the hub repo through the cache) and the BERT tokenizer
    (``tokenizer``, ``T2I_BENCH_IMAGEREWARD_TOKENIZER``, a ``vocab.txt`` beside the weights,
    else ``bert-base-uncased`` through the cache)."""
    source = weights or env_source("T2I_BENCH_IMAGEREWARD", None)
    if source:
        path = expand(source)
        ckpt = os.path.join(path, "ImageReward.pt") if os.path.isdir(path) else path
        med = os.path.join(os.path.dirname(ckpt), "med_config.json")
        for p in (ckpt, med):
            if not os.path.isfile(p):
                raise BenchError(f"ImageReward file not found ({WEIGHTS_HINT})", p)
        label = weights_label(ckpt)
    else:
        ckpt = hub_file(HUB_ID, "ImageReward.pt", WEIGHTS_HINT, with_files=["med_config.json"])
        med = hub_file(HUB_ID, "med_config.json", WEIGHTS_HINT)
        label = HUB_ID
    assert ckpt is not None and med is not None  # required files
    local_vocab = os.path.join(os.path.dirname(ckpt), "vocab.txt")
    tok_source = tokenizer or env_source("T2I_BENCH_IMAGEREWARD_TOKENIZER", None)
    tok_source = tok_source or (os.path.dirname(ckpt) if os.path.isfile(local_vocab) else None)
    tok_folder, tok_files = _tokenizer_files(tok_source or TOKENIZER_ID)
    if tok_source and tok_source != os.path.dirname(ckpt):
        label += f"+tokenizer:{weights_label(tok_folder)}"
    return ImageRewardSource(ckpt, med, tok_folder, (ckpt, med, *tok_files), label)


def _bad_checkpoint(path: str, exc: Exception) -> BenchError:
    return BenchError(
        f"cannot read ImageReward.pt ({brief(exc)}); it must be the "
        f"published state dict ({CHECKPOINT_URL}): download it again",
        path,
    )


def read_checkpoint(path: str, mmap: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of an ImageReward.pt (``weights_only``; ``mmap`` reads shapes without
    reading the tensors); any failure is one line naming the file."""
    try:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            sd = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except Exception as exc:
        raise _bad_checkpoint(path, exc) from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise _bad_checkpoint(path, TypeError(f"holds a {type(sd).__name__}, not a state dict"))
    return sd


@functools.lru_cache(maxsize=8)
def _image_size(path: str, size: int, mtime_ns: int) -> int:
    return vision_geometry(read_checkpoint(path, mmap=True))[2]


def checkpoint_image_size(path: str) -> int:
    """The input size of the BLIP ViT of an ImageReward.pt, from tensor shapes (mmap)."""
    st = os.stat(path)
    return _image_size(path, st.st_size, st.st_mtime_ns)


def _read_med_config(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            med = json.load(f)
        med["vocab_size"]  # noqa: B018  (required key)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"not a BLIP med_config.json ({type(exc).__name__}: {exc})", path) from exc
    return med


def load_real_image_reward(
    weights: str | None = None, tokenizer: str | None = None
) -> tuple[ImageRewardModel, BertTokenizer, str]:
    src = resolve_real(weights, tokenizer)
    med = _read_med_config(src.med_config)
    model = model_from_checkpoint(read_checkpoint(src.checkpoint), med)
    try:
        tok = BertTokenizer.from_pretrained(src.tokenizer_folder)
    except Exception as exc:
        raise BenchError(
            f"cannot load the BERT tokenizer ({brief(exc)})",
            src.tokenizer_folder,
        ) from exc
    tok = blip_tokenizer(tok)
    if len(tok) != med["vocab_size"]:
        raise BenchError(
            f"tokenizer has {len(tok)} tokens, med_config.json expects {med['vocab_size']}",
            src.med_config,
        )
    return model, tok, src.label


def preprocessing(size: int) -> str:
    return (
        f"resize shortest side to {size} (bicubic, PIL); center crop {size}; RGB; to [0,1]; "
        f"normalize mean={CLIP_MEAN} std={CLIP_STD}; text: BERT uncased WordPiece "
        f"+[DEC]/[ENC], pad to {MAX_TEXT_TOKENS}, truncate; reward=(mlp-{REWARD_MEAN})/"
        f"{REWARD_STD}"
    )


def describe_image_reward(
    profile: str = "tiny", weights: str | None = None, tokenizer: str | None = None
) -> BackboneSpec:
    """The static spec of ``image_reward``; the image size is read from the checkpoint's
    tensor shapes (memory-mapped, no weights read), which also checks the file early."""
    check_profile(NAME, profile)
    arch = "BLIP ViT (transformers BlipVisionModel) + BLIP med text encoder + reward MLP"
    if profile == "tiny":
        size = TINY_VISION["image_size"]
        return BackboneSpec(
            NAME, "tiny", VERSION, arch, preprocessing(size), f"seed={TINY_SEED}", transient=True
        )
    src = resolve_real(weights, tokenizer)
    _read_med_config(src.med_config)
    size = checkpoint_image_size(src.checkpoint)
    return BackboneSpec(
        NAME,
        "real",
        VERSION,
        arch,
        preprocessing(size),
        src.label,
        src.files,
        description=HUB_ID,
        transient=True,  # 197 ViT-L tokens: 0.81 MB per image
    )


class ImageRewardBackbone(TorchBackbone):
    """Image tokens per image (cached once) + prompt-conditioned reward from them."""

    def __init__(
        self,
        model: ImageRewardModel,
        tokenizer: BertTokenizer,
        profile: str,
        weights: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.name, self.profile, self.weights = "image_reward", profile, weights
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        vcfg = model.vision.config
        size = int(vcfg.image_size)
        self.tokens_shape = ((size // vcfg.patch_size) ** 2 + 1, int(vcfg.hidden_size))
        self.feature_dim = self.tokens_shape[0] * self.tokens_shape[1]
        self.transform = T.Compose(
            [
                T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(size),
                T.PILToTensor(),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(CLIP_MEAN, CLIP_STD),
            ]
        )
        self.preprocessing = preprocessing(size)
        self.text_forward_calls = 0

    def _prepare_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images]).to(self.device)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.image_tokens(pixels).flatten(1)

    def score_embeddings(self, embeddings: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """(n,) float64 rewards of image i (its :meth:`embed_images` row) for ``prompts[i]``."""
        if len(embeddings) != len(prompts):
            raise BenchError(f"{len(embeddings)} image embeddings for {len(prompts)} prompts")
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.feature_dim:
            raise BenchError(f"ImageReward embeddings must be (n, {self.feature_dim})")
        if len(prompts) == 0:
            return np.zeros(0)
        pairs = list(zip(range(len(prompts)), prompts, strict=True))

        def prepare(chunk: Sequence[tuple[int, str]]) -> dict[str, torch.Tensor]:
            return self._prepare_pairs(emb[[i for i, _ in chunk]], [p for _, p in chunk])

        def count() -> None:
            self.text_forward_calls += 1

        out = batched_forward(pairs, self.batch_size, prepare, self.model.reward, count)
        return out.astype(np.float64)

    def _prepare_pairs(self, embeddings: np.ndarray, prompts: Sequence[str]) -> dict[str, Any]:
        """Image tokens (from embeddings) and tokenised prompts, on the model's device."""
        enc = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=MAX_TEXT_TOKENS,
            return_tensors="pt",
        )
        tokens = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        return {
            "tokens": tokens.view(len(prompts), *self.tokens_shape).to(self.device),
            "input_ids": enc["input_ids"].to(self.device),
            "attention_mask": enc["attention_mask"].to(self.device),
        }

    def forward_reward_batch(self, embeddings: np.ndarray, prompts: Sequence[str]) -> torch.Tensor:
        """Rewards of one batch of (image embedding, prompt) pairs, left on the device."""
        with torch.inference_mode():
            return self.model.reward(**self._prepare_pairs(embeddings, prompts))

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        """(n,) rewards of ``images[i]`` for ``prompts[i]``."""
        return self.score_embeddings(self.embed_images(to_rgb(images)), prompts)


def make_image_reward(
    profile: str = "tiny",
    device: str = "cpu",
    batch_size: int = 32,
    weights: str | None = None,
    tokenizer: str | None = None,
) -> ImageRewardBackbone:
    check_profile("image_reward", profile)
    if profile == "tiny":
        model, tok = build_tiny_image_reward()
        return ImageRewardBackbone(model, tok, "tiny", f"seed={TINY_SEED}", device, batch_size)
    model, tok, label = load_real_image_reward(weights, tokenizer)
    return ImageRewardBackbone(model, tok, "real", label, device, batch_size)


@register_backbone(NAME, describe=describe_image_reward)
def _image_reward(profile: str, device: str = "cpu", **options: Any) -> ImageRewardBackbone:
    return make_image_reward(profile, device, **options)
