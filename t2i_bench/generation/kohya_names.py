"""kohya module names: map the ldm-style UNet names (SDXL files from sd-scripts use them) to
the diffusers UNet's module names.

sd-scripts names SD 1.x/2.x LoRA modules after the diffusers UNet
(``lora_unet_down_blocks_0_attentions_0_…``) but SDXL modules after the original ldm UNet
(``lora_unet_input_blocks_4_1_…``). This module derives the ldm name of every diffusers module
from the UNet's block layout, so a file in either naming applies to a diffusers UNet.
"""

from __future__ import annotations

_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_LDM_PREFIXES = ("lora_unet_input_blocks", "lora_unet_middle_block", "lora_unet_output_blocks")
_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _block_prefixes(unet) -> dict[str, str]:
    """diffusers block prefix (e.g. ``down_blocks.1.attentions.0``) -> ldm prefix."""
    out: dict[str, str] = {}
    layers = len(unet.down_blocks[0].resnets)
    for i, block in enumerate(unet.down_blocks):
        for j in range(len(block.resnets)):
            index = 1 + i * (layers + 1) + j
            out[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{index}.0"
            if getattr(block, "attentions", None) is not None:
                out[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{index}.1"
        if getattr(block, "downsamplers", None):
            out[f"down_blocks.{i}.downsamplers.0.conv"] = (
                f"input_blocks.{(i + 1) * (layers + 1)}.0.op"
            )
    mid = unet.mid_block
    out["mid_block.resnets.0"] = "middle_block.0"
    if getattr(mid, "attentions", None):
        out["mid_block.attentions.0"] = "middle_block.1"
        out["mid_block.resnets.1"] = "middle_block.2"
    for i, block in enumerate(unet.up_blocks):
        has_attention = getattr(block, "attentions", None) is not None
        count = len(block.resnets)
        for j in range(count):
            index = i * count + j
            out[f"up_blocks.{i}.resnets.{j}"] = f"output_blocks.{index}.0"
            if has_attention:
                out[f"up_blocks.{i}.attentions.{j}"] = f"output_blocks.{index}.1"
        if getattr(block, "upsamplers", None):
            last = i * count + count - 1
            slot = 2 if has_attention else 1
            out[f"up_blocks.{i}.upsamplers.0.conv"] = f"output_blocks.{last}.{slot}.conv"
    return out


def ldm_names(unet) -> dict[str, str]:
    """diffusers module name -> ldm module name, for every named module of ``unet``."""
    prefixes = _block_prefixes(unet)
    mapping: dict[str, str] = {}
    for name, _ in unet.named_modules():
        if not name:
            continue
        if name in _TOP_LEVEL:
            mapping[name] = _TOP_LEVEL[name]
            continue
        for prefix, ldm in prefixes.items():
            if name == prefix:
                mapping[name] = ldm
            elif name.startswith(prefix + "."):
                rest = name[len(prefix) + 1 :]
                if ".resnets." in prefix:
                    rest = _RESNET_PARTS.get(rest, rest)
                mapping[name] = f"{ldm}.{rest}"
            else:
                continue
            break
    return mapping


def kohya_ldm_to_diffusers(unet) -> dict[str, str]:
    """``lora_unet_<ldm name>`` -> ``lora_unet_<diffusers name>`` (dots as underscores)."""

    def kohya(name: str) -> str:
        return "lora_unet_" + name.replace(".", "_")

    return {kohya(ldm): kohya(diffusers) for diffusers, ldm in ldm_names(unet).items()}


def rename_ldm_keys(weights: dict, unet) -> dict:
    """Rename a state dict's ldm-style UNet keys to diffusers-style; others are kept."""
    if not any(k.startswith(_LDM_PREFIXES) for k in weights):
        return weights
    mapping = kohya_ldm_to_diffusers(unet)
    renamed = {}
    for key, value in weights.items():
        module, _, rest = key.partition(".")
        renamed[f"{mapping.get(module, module)}.{rest}" if rest else key] = value
    return renamed
