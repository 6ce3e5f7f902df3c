"""Train LyCORIS adapters on the demo concept the way kohya's sd-scripts does.

``lycoris.kohya.create_network`` with sd-scripts-style string ``network_args``,
``network.apply_to(text_encoder, unet, True, True)``, AdamW on
``network.prepare_optimizer_params(...)``, the epsilon-prediction loss on the concept images
and their captions, and ``network.save_weights`` with ``ss_*`` metadata (all strings) at the
end of every epoch. ``network.restore()`` afterwards leaves the base modules as they were.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lycoris.kohya import LycorisNetworkKohya, create_network

from t2i_bench.demo.diffusion import diffusion_loss, encode_text, noise_scheduler, sample_latents
from t2i_bench.demo.diffusion import tokenize as tokenize_captions
from t2i_bench.demo.pretrain import encode_images

# LyCORIS 4.1.3's builtin "full" preset lists the class TimestepEmbedding *and* the names
# time_embedding.linear_1/2, so on any SD UNet it creates lora_unet_time_embedding_linear_1
# twice and asserts. This preset is the SD 1.x part of "full" (the same modules get adapted),
# passed as a preset file the way sd-scripts users pass custom presets.
SD1_FULL_PRESET = {
    "enable_conv": True,
    "unet_target_module": ["Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D"],
    "unet_target_name": [
        "conv_in",
        "conv_out",
        "time_embedding.linear_1",
        "time_embedding.linear_2",
    ],
    "text_encoder_target_module": ["CLIPAttention", "CLIPMLP"],
    "text_encoder_target_name": [],
}
SD1_FULL_PRESET_NAME = "full-sd1.toml"


def write_preset(directory: Path) -> Path:
    """Write ``SD1_FULL_PRESET`` as a LyCORIS preset TOML file; return its path."""
    import toml

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SD1_FULL_PRESET_NAME
    path.write_text(toml.dumps(SD1_FULL_PRESET), "utf-8")
    return path


# Reproducible build: timestamps come from SOURCE_DATE_EPOCH, else this fixed instant
# (2026-01-01T00:00:00Z), and metadata keys are sorted (``sort_metadata``), so that
# rebuilding writes byte-identical adapter files.
_DEFAULT_EPOCH = 1767225600


@dataclass(frozen=True)
class AdapterSpec:
    """One training run: an algo and its hyperparameters (sd-scripts' names)."""

    algo: str
    learning_rate: float
    network_dim: int = 4
    network_alpha: float = 2.0
    factor: int = -1  # LoKr's Kronecker factor; -1 = automatic
    preset: str = SD1_FULL_PRESET_NAME  # recorded in ss_network_args
    preset_path: str = ""  # the file LyCORIS reads; defaults to ``preset``
    epochs: int = 3
    repeats: int = 10  # sd-scripts' "<repeats>_<name>" folder prefix
    batch_size: int = 3
    seed: int = 0
    timestep_power: float = 1.0  # 1 = sd-scripts' uniform timesteps; < 1 favours noisy ones
    extra_args: dict[str, str] = field(default_factory=dict)

    def network_args(self, for_lycoris: bool = False) -> dict[str, str]:
        """The ``--network_args`` as sd-scripts passes them: strings.

        ``for_lycoris`` gives the preset's file path instead of its recorded name.
        """
        args = {
            "algo": self.algo,
            "preset": (self.preset_path or self.preset) if for_lycoris else self.preset,
            "conv_dim": str(self.network_dim),
            "conv_alpha": str(self.network_alpha),
            "factor": str(self.factor),
        }
        return {**args, **self.extra_args}

    def output_name(self, concept: str) -> str:
        """kohya-style output name, e.g. ``olis-loha-lr1e-3``."""
        return f"{concept}-{self.algo}-lr{format_lr(self.learning_rate)}"


def format_lr(lr: float) -> str:
    """``0.001`` -> ``1e-3``; ``0.0003`` -> ``3e-4``."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def build_time() -> int:
    """The build's timestamp: ``SOURCE_DATE_EPOCH`` if set, else a fixed instant."""
    return int(os.environ.get("SOURCE_DATE_EPOCH", _DEFAULT_EPOCH))


@dataclass
class TrainingData:
    """The concept's cached VAE latents (scaled mean/std) and caption token ids."""

    latent_mean: torch.Tensor
    latent_std: torch.Tensor
    input_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.input_ids)


def make_training_data(
    components: dict[str, Any], images: torch.Tensor, captions: Sequence[str]
) -> TrainingData:
    """Encode the concept images once (like sd-scripts' ``--cache_latents``)."""
    mean, std = encode_images(components["vae"], images)
    return TrainingData(mean, std, tokenize_captions(components["tokenizer"], captions))


def _metadata(
    spec: AdapterSpec,
    concept: str,
    data: TrainingData,
    base: dict[str, str],
    epoch: int,
    steps: int,
    max_steps: int,
) -> dict[str, str]:
    lr = str(spec.learning_rate)
    meta = {
        "ss_network_module": "lycoris.kohya",
        "ss_network_dim": str(spec.network_dim),
        "ss_network_alpha": str(spec.network_alpha),
        "ss_network_args": json.dumps(spec.network_args()),
        "ss_learning_rate": lr,
        "ss_unet_lr": lr,
        "ss_text_encoder_lr": lr,
        "ss_epoch": str(epoch),
        "ss_num_epochs": str(spec.epochs),
        "ss_steps": str(steps),
        "ss_max_train_steps": str(max_steps),
        "ss_num_batches_per_epoch": str(max_steps // spec.epochs),
        "ss_batch_size_per_device": str(spec.batch_size),
        "ss_seed": str(spec.seed),
        "ss_output_name": spec.output_name(concept),
        "ss_training_started_at": str(build_time()),
        "ss_num_train_images": str(len(data) * spec.repeats),
        "ss_resolution": "(64, 64)",
        "ss_optimizer": "torch.optim.adamw.AdamW",
        "ss_lr_scheduler": "constant",
        "ss_mixed_precision": "no",
        "ss_cache_latents": "True",
        "ss_caption_dropout_rate": "0.0",
        "ss_clip_skip": "None",
        "ss_v2": "False",
        "ss_base_model_version": "sd_v1",
        "ss_dataset_dirs": json.dumps(
            {f"{spec.repeats}_{concept}": {"n_repeats": spec.repeats, "img_count": len(data)}}
        ),
    }
    meta.update(base)  # ss_sd_model_name, ss_sd_model_hash, ss_new_sd_model_hash
    return meta


def train_adapter(
    components: dict[str, Any],
    data: TrainingData,
    spec: AdapterSpec,
    out_dir: Path,
    concept: str,
    base_metadata: dict[str, str],
    on_step: Callable[[float], None] | None = None,
) -> list[Path]:
    """Train one adapter; save ``<output_name>-<epoch:06d>.safetensors`` after each epoch."""
    unet, text_encoder, vae = components["unet"], components["text_encoder"], components["vae"]
    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    gen = torch.Generator().manual_seed(spec.seed)
    order_rng = random.Random(spec.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)  # LyCORIS initialises its modules from the global RNG
        # create_network applies the preset to class attributes: always pass it explicitly
        network = create_network(
            1.0,
            spec.network_dim,
            spec.network_alpha,
            vae,
            text_encoder,
            unet,
            **spec.network_args(for_lycoris=True),
        )
    network.apply_to(text_encoder, unet, True, True)
    try:
        params, _ = network.prepare_optimizer_params(
            spec.learning_rate, spec.learning_rate, spec.learning_rate
        )
        optimizer = torch.optim.AdamW(params, lr=spec.learning_rate)
        scheduler = noise_scheduler()
        network.prepare_grad_etc(text_encoder, unet)
        items = list(range(len(data))) * spec.repeats
        per_epoch = len(items) // spec.batch_size
        max_steps = per_epoch * spec.epochs
        saved, step = [], 0
        out_dir.mkdir(parents=True, exist_ok=True)
        for epoch in range(1, spec.epochs + 1):
            network.on_epoch_start(text_encoder, unet)
            order_rng.shuffle(items)
            for b in range(per_epoch):
                idx = torch.tensor(items[b * spec.batch_size : (b + 1) * spec.batch_size])
                latents = sample_latents(data.latent_mean[idx], data.latent_std[idx], gen)
                hidden = encode_text(text_encoder, data.input_ids[idx])
                loss = diffusion_loss(unet, scheduler, latents, hidden, gen, spec.timestep_power)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if on_step:
                    on_step(step / max_steps)
            meta = _metadata(spec, concept, data, base_metadata, epoch, step, max_steps)
            path = out_dir / f"{spec.output_name(concept)}-{epoch:06d}.safetensors"
            network.save_weights(str(path), torch.float32, meta)
            sort_metadata(path)
            saved.append(path)
    finally:
        network.restore()
        network.requires_grad_(False)
    return saved


def sort_metadata(path: Path) -> None:
    """Rewrite a .safetensors header with its ``__metadata__`` keys sorted.

    safetensors 0.8 writes metadata in a per-process random order (a Rust HashMap), so two
    builds of the same adapter differed in their bytes, and so in the file hash that image
    keys are made of. Tensors and their offsets are untouched; the header stays padded with
    spaces to a multiple of 8 bytes, as safetensors writes it."""
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    metadata = header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    text = json.dumps({**ordered, **header}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length :])
    os.replace(tmp, path)


def use_sd1_preset() -> None:
    """Point LyCORIS's kohya class-level targets at ``SD1_FULL_PRESET``.

    ``create_network_from_weights`` builds a throwaway ``LycorisNetworkKohya`` with whatever
    targets the class holds; in a fresh process (lycoris 4.1.3 defaults) that asserts on any
    SD UNet (the duplicated time_embedding names). Call this before loading adapters.
    """
    LycorisNetworkKohya.apply_preset(SD1_FULL_PRESET)
