"""Brief, seeded pretraining of the tiny base model on procedural images.

First the VAE (reconstruction + a small KL term), then the UNet and text encoder together
(epsilon-prediction diffusion loss on cached VAE latents, captions dropped 10% of the time
so classifier-free guidance works). ``demo/base.py`` runs it and stores the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from t2i_bench.demo.diffusion import (
    diffusion_loss,
    encode_text,
    noise_scheduler,
    sample_latents,
    tokenize,
)

StepCallback = Callable[[float], None]  # fraction of the stage done


def train_vae(
    vae: AutoencoderKL,
    images: torch.Tensor,
    steps: int,
    seed: int,
    batch_size: int = 32,
    crop: int = 32,
    lr: float = 3e-3,
    kl_weight: float = 1e-6,
    init_logvar: float = -6.0,
    on_step: StepCallback | None = None,
) -> float:
    """Train ``vae`` to reconstruct ``images`` ((n, 3, H, W) in [-1, 1]); return the last loss.

    The VAE is fully convolutional, so it trains on random ``crop``-pixel crops: cheaper per
    step than whole images, with the same shapes and colours.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # start with a small posterior std so the latents carry signal early
        vae.quant_conv.bias[vae.config.latent_channels :] = init_logvar
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    size = images.shape[-1]
    vae.train()
    loss = torch.zeros(())
    for step in range(steps):
        batch = images[torch.randint(0, len(images), (batch_size,), generator=gen)]
        if crop < size:
            i, j = (torch.randint(0, (size - crop) // 8 + 1, (2,), generator=gen) * 8).tolist()
            batch = batch[:, :, i : i + crop, j : j + crop]
        posterior = vae.encode(batch).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        loss = F.mse_loss(vae.decode(z).sample, batch) + kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if on_step:
            on_step((step + 1) / steps)
    vae.eval()
    vae.requires_grad_(False)
    return float(loss.detach())


@torch.no_grad()
def encode_images(vae: AutoencoderKL, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of ``images``, already multiplied by the VAE's scaling factor."""
    means, stds = [], []
    for chunk in images.split(64):
        posterior = vae.encode(chunk).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
    scale = vae.config.scaling_factor
    return torch.cat(means) * scale, torch.cat(stds) * scale


@torch.no_grad()
def calibrate_scaling_factor(vae: AutoencoderKL, images: torch.Tensor) -> float:
    """Set the VAE's ``scaling_factor`` so scaled latents have unit std (SD's 0.18215 rule)."""
    vae.register_to_config(scaling_factor=1.0)
    mean, std = encode_images(vae, images)
    latents = sample_latents(mean, std, torch.Generator().manual_seed(0))
    factor = round(float(1.0 / latents.std()), 5)
    vae.register_to_config(scaling_factor=factor)
    return factor


def train_text_to_image(
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    latent_mean: torch.Tensor,
    latent_std: torch.Tensor,
    captions: Sequence[str],
    steps: int,
    seed: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    caption_dropout: float = 0.1,
    timestep_power: float = 0.5,
    on_step: StepCallback | None = None,
) -> float:
    """Train ``unet`` and ``text_encoder`` together with the diffusion loss on cached latents.

    A caption is replaced by the empty one with probability ``caption_dropout`` (for
    classifier-free guidance). Returns the mean loss of the last 10% of steps.
    """
    gen = torch.Generator().manual_seed(seed)
    unique = [""] + sorted(set(captions) - {""})
    row = {c: i for i, c in enumerate(unique)}
    unique_ids = tokenize(tokenizer, unique)
    caption_rows = torch.tensor([row[c] for c in captions])
    scheduler = noise_scheduler()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    # no weight decay on the token embedding: rows of tokens the captions never use keep
    # their initial values exactly, so the saved base can leave them out (demo/base.py)
    embedding = text_encoder.get_input_embeddings().weight
    groups = [
        {"params": [p for p in params if p is not embedding], "weight_decay": 1e-4},
        {"params": [embedding], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    unet.train()
    text_encoder.train()
    tail: list[float] = []
    for step in range(steps):
        idx = torch.randint(0, len(caption_rows), (batch_size,), generator=gen)
        keep = torch.rand(batch_size, generator=gen) >= caption_dropout
        rows = torch.where(keep, caption_rows[idx], torch.zeros_like(idx))
        latents = sample_latents(latent_mean[idx], latent_std[idx], gen)
        hidden = encode_text(text_encoder, unique_ids[rows])
        loss = diffusion_loss(unet, scheduler, latents, hidden, gen, timestep_power)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step >= steps * 0.9:
            tail.append(float(loss.detach()))
        if on_step:
            on_step((step + 1) / steps)
    for module in (unet, text_encoder):
        module.eval()
        module.requires_grad_(False)
    return sum(tail) / max(1, len(tail))
