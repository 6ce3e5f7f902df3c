"""The pieces of SD 1.x training shared by pretraining and adapter training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from t2i_bench.generation.tiny import SCHEDULER_CONFIG


def noise_scheduler() -> DDPMScheduler:
    """The training noise schedule (SD 1.x betas, epsilon prediction)."""
    return DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})


def tokenize(tokenizer: CLIPTokenizer, captions: Sequence[str]) -> torch.Tensor:
    """Token ids padded to the model's context length, as the SD pipeline does."""
    return tokenizer(
        list(captions),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def encode_text(text_encoder: CLIPTextModel, input_ids: torch.Tensor) -> torch.Tensor:
    """The last hidden state (what the SD pipeline conditions the UNet on)."""
    return text_encoder(input_ids)[0]


def sample_latents(
    mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """A draw from the VAE posterior N(mean, std²)."""
    return mean + std * torch.randn(mean.shape, generator=generator)


def diffusion_loss(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    hidden: torch.Tensor,
    generator: torch.Generator,
    timestep_power: float = 1.0,
) -> torch.Tensor:
    """The epsilon-prediction loss; timesteps ``T * u ** timestep_power`` with u ~ U(0, 1).

    ``timestep_power`` 1 is SD's uniform sampling; below 1 favours noisy timesteps, where
    the prompt decides colours and layout.
    """
    noise = torch.randn(latents.shape, generator=generator)
    steps = scheduler.config.num_train_timesteps
    u = torch.rand(latents.shape[0], generator=generator)
    t = (u**timestep_power * steps).long().clamp(max=steps - 1)
    noisy = scheduler.add_noise(latents, noise, t)
    pred = unet(noisy, t, hidden).sample
    return F.mse_loss(pred, noise)
