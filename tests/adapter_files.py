"""Write real LyCORIS/kohya adapter files against a pipeline, with non-zero random weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def write_lycoris_file(
    pipe,
    path: Path,
    algo: str = "lora",
    seed: int = 0,
    dim: int = 4,
    preset: str = "attn-mlp",
    **kwargs,
) -> Path:
    """Create a network with lycoris-lora's kohya wrapper, randomise it, save it, restore."""
    import lycoris.kohya as lk

    torch.manual_seed(seed)
    network = lk.create_network(
        1.0, dim, dim, None, pipe.text_encoder, pipe.unet, algo=algo, preset=preset, **kwargs
    )
    network.apply_to(pipe.text_encoder, pipe.unet, True, True)
    with torch.no_grad():
        for param in network.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    metadata = {
        "ss_network_module": "lycoris.kohya",
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(dim),
        "ss_network_args": json.dumps({"algo": algo, "preset": preset, **kwargs}),
        "ss_learning_rate": "0.001",
        "ss_epoch": "3",
        "ss_seed": str(seed),
    }
    network.save_weights(str(path), torch.float32, metadata)
    network.restore()
    return path
