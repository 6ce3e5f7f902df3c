"""The per-metric way: one script per metric, as DreamBench++, CustomConcept101 and HEIM do it.

Each script loads its own model, reads and preprocesses every image it needs from disk, and
computes its metric with the usual package: torchmetrics (``CLIPScore``,
``FrechetInceptionDistance``, ``KernelInceptionDistance``), ``lpips`` and ``vendi-score``, or
a few lines of torch where no package exists (CLIP-I, DINO, SCD, style loss, DINO to base).
They are generous to the baseline: reference images are embedded once per script (not once per
group), images are batched per group, and "loading" a model is an in-memory copy.

Every script returns ``{(metric, checkpoint, prompt_type): value}`` (group means for
per-image metrics), so its values can be checked against t2i-bench's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from benchmarks.workload import ImageGroup
from benchmarks.zoo import IMAGENET_MEAN, IMAGENET_STD, Zoo, dino_processor
from t2i_bench.concepts import Concept
from t2i_bench.metrics.base import get_metric

Values = dict[tuple[str, str, str], float]


@dataclass(frozen=True)
class ScoringInput:
    """What the scripts see: the groups on disk, the concept and the base model's name."""

    groups: list[ImageGroup]
    concept: Concept
    base: str = "base"

    @property
    def references(self) -> tuple[Path, ...]:
        return self.concept.image_paths

    def applicable(self, metric: str) -> list[ImageGroup]:
        m = get_metric(metric)
        return [
            g
            for g in self.groups
            if g.prompt_type in m.prompt_types
            and not (m.compares_with_base and g.checkpoint == self.base)
        ]


def read(paths: Sequence[Path]) -> list[Image.Image]:
    """Decode images from disk, as each script does for itself."""
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(image.convert("RGB"))
    return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return x / x.norm(dim=-1, keepdim=True)


def _by_prompt(group: ImageGroup) -> list[list[int]]:
    index: dict[str, list[int]] = {}
    for i, prompt in enumerate(group.prompts):
        index.setdefault(prompt, []).append(i)
    return [idx for idx in index.values() if len(idx) > 1]


# ------------------------------------------------------------------------------ CLIP


def _clip_transform(model: torch.nn.Module) -> Callable:
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)


def clip_i(data: ScoringInput, zoo: Zoo) -> Values:
    """CLIP-I: mean cosine of CLIP image features over generated x reference pairs."""
    model = zoo.model("clip")
    preprocess = _clip_transform(model)

    def embed(paths: Sequence[Path]) -> torch.Tensor:
        return _unit(model.encode_image(torch.stack([preprocess(im) for im in read(paths)])))

    out: Values = {}
    with torch.inference_mode():
        ref = embed(data.references)
        for g in data.applicable("clip_i"):
            out[("clip_i", g.checkpoint, g.prompt_type)] = float((embed(g.paths) @ ref.T).mean())
    return out


class _OpenClipForTorchmetrics(torch.nn.Module):
    """The two methods torchmetrics' ``CLIPScore`` calls, on an open_clip model."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = SimpleNamespace()  # no text_config: no truncation logic

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        return self.model.encode_text(input_ids)


class _OpenClipProcessor:
    """A CLIP processor (images as CHW uint8 tensors, texts as strings) for open_clip."""

    def __init__(self, transform: Callable, tokenizer: Callable) -> None:
        self.transform, self.tokenizer = transform, tokenizer

    def __call__(self, images=None, text=None, **_: object) -> dict[str, torch.Tensor]:
        if images is not None:
            return {"pixel_values": torch.stack([self.transform(to_pil_image(i)) for i in images])}
        ids = self.tokenizer(list(text))
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def clip_t(data: ScoringInput, zoo: Zoo) -> Values:
    """CLIP-T with torchmetrics' ``CLIPScore`` (100·cos, mean over a group's images)."""
    import open_clip
    from torchmetrics.multimodal.clip_score import CLIPScore

    def load():
        model = zoo.model("clip")
        processor = _OpenClipProcessor(_clip_transform(model), open_clip.get_tokenizer("ViT-B-32"))
        return _OpenClipForTorchmetrics(model), processor

    metric = CLIPScore(model_name_or_path=load)
    out: Values = {}
    with torch.inference_mode():
        for g in data.applicable("clip_t"):
            images = [pil_to_tensor(im) for im in read(g.paths)]
            metric.update(images, [data.concept.text_for_clip_t(p) for p in g.prompts])
            out[("clip_t_x100", g.checkpoint, g.prompt_type)] = float(metric.compute())
            metric.reset()
    return out


# ------------------------------------------------------------------------------ DINO


def _dino_embedder(zoo: Zoo) -> Callable[[Sequence[Path]], torch.Tensor]:
    model, processor = zoo.model("dino"), dino_processor()

    def embed(paths: Sequence[Path]) -> torch.Tensor:
        pixels = processor(images=read(paths), return_tensors="pt")["pixel_values"]
        return model(pixel_values=pixels).last_hidden_state[:, 0]

    return embed


def dino(data: ScoringInput, zoo: Zoo) -> Values:
    """DINO similarity: mean cosine of CLS features over generated x reference pairs."""
    embed = _dino_embedder(zoo)
    out: Values = {}
    with torch.inference_mode():
        ref = _unit(embed(data.references))
        for g in data.applicable("dino"):
            gen = _unit(embed(g.paths))
            out[("dino", g.checkpoint, g.prompt_type)] = float((gen @ ref.T).mean())
    return out


def scd(data: ScoringInput, zoo: Zoo) -> Values:
    """Squared distance between the centroids of unit DINO features."""
    embed = _dino_embedder(zoo)
    out: Values = {}
    with torch.inference_mode():
        ref = _unit(embed(data.references)).mean(0)
        for g in data.applicable("scd"):
            diff = _unit(embed(g.paths)).mean(0) - ref
            out[("scd", g.checkpoint, g.prompt_type)] = float(diff @ diff)
    return out


def dino_base(data: ScoringInput, zoo: Zoo) -> Values:
    """DINO cosine of each adapter image with the base model's image (same prompt, seed)."""
    embed = _dino_embedder(zoo)
    out: Values = {}
    with torch.inference_mode():
        for g in data.applicable("dino_base"):
            pairs = [(p, b) for p, b in zip(g.paths, g.base_paths, strict=True) if b is not None]
            own = _unit(embed([p for p, _ in pairs]))
            base = _unit(embed([b for _, b in pairs]))
            out[("dino_base", g.checkpoint, g.prompt_type)] = float((own * base).sum(1).mean())
    return out


def vendi(data: ScoringInput, zoo: Zoo) -> Values:
    """Vendi score (vendi-score package) of the DINO features of each prompt's images."""
    from vendi_score import image_utils

    model, processor = zoo.model("dino"), dino_processor()

    class Cls(torch.nn.Module):
        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return model(pixel_values=pixels).last_hidden_state[:, 0]

    def transform(image: Image.Image) -> torch.Tensor:
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    out: Values = {}
    with torch.inference_mode():
        for g in data.applicable("vendi"):
            scores = [
                image_utils.embedding_vendi_score(
                    read([g.paths[i] for i in idx]), model=Cls(), transform=transform
                )
                for idx in _by_prompt(g)
            ]
            out[("vendi", g.checkpoint, g.prompt_type)] = float(np.mean(scores))
    return out


# ----------------------------------------------------------------------------- LPIPS


def _lpips_model(zoo: Zoo) -> torch.nn.Module:
    """``lpips.LPIPS(net='alex')`` loaded with the benchmark's AlexNet and linear weights."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    source = zoo.model("lpips")
    with torch.no_grad():
        for k, ours in enumerate(source.slices):
            theirs = getattr(model.net, f"slice{k + 1}")
            theirs.load_state_dict({f"{name}": v for name, v in _renumber(ours, theirs).items()})
            weight = getattr(source, f"w{k}")
            getattr(model, f"lin{k}").model[-1].weight.copy_(weight.view(1, -1, 1, 1))
    return model


def _renumber(ours: torch.nn.Sequential, theirs: torch.nn.Sequential) -> dict[str, torch.Tensor]:
    """Map our slice's state dict onto lpips' slice (same layers, different indices)."""
    names = [n for n, _ in theirs.named_children()]
    out = {}
    for key, value in ours.state_dict().items():
        index, param = key.split(".", 1)
        out[f"{names[int(index)]}.{param}"] = value
    return out


def lpips_div(data: ScoringInput, zoo: Zoo) -> Values:
    """Mean pairwise LPIPS (lpips package) between the images of one prompt, at 256 px."""
    model = _lpips_model(zoo)
    to_input = T.Compose(
        [
            T.PILToTensor(),
            T.Resize((256, 256), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.ToDtype(torch.float32, scale=True),
        ]
    )
    out: Values = {}
    with torch.inference_mode():
        for g in data.applicable("lpips_div"):
            means = []
            for idx in _by_prompt(g):
                x = torch.stack([to_input(im) for im in read([g.paths[i] for i in idx])]) * 2 - 1
                i, j = np.triu_indices(len(idx), k=1)
                means.append(float(model(x[i], x[j]).mean()))
            out[("lpips_div", g.checkpoint, g.prompt_type)] = float(np.mean(means))
    return out


# --------------------------------------------------------------------------- FID, KID


class _InceptionPool(torch.nn.Module):
    """2048-d pool features of the FID Inception network, as torchmetrics' ``feature``."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def _uint8(paths: Sequence[Path]) -> torch.Tensor:
    return torch.stack([pil_to_tensor(im) for im in read(paths)])


def fid(data: ScoringInput, zoo: Zoo) -> Values:
    """torchmetrics ``FrechetInceptionDistance``: references once, then each group."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(
        feature=_InceptionPool(zoo.model("inception")), reset_real_features=False
    )
    out: Values = {}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric.update(_uint8(data.references), real=True)
        for g in data.applicable("fid"):
            metric.update(_uint8(g.paths), real=False)
            out[("fid", g.checkpoint, g.prompt_type)] = float(metric.compute())
            metric.reset()
    return out


def kid(data: ScoringInput, zoo: Zoo) -> Values:
    """torchmetrics ``KernelInceptionDistance`` (mean and std over 100 subsets) per group."""
    from torchmetrics.image.kid import KernelInceptionDistance

    metric = KernelInceptionDistance(
        feature=_InceptionPool(zoo.model("inception")), subsets=100, reset_real_features=False
    )
    out: Values = {}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric.update(_uint8(data.references), real=True)
        for g in data.applicable("kid"):
            metric.update(_uint8(g.paths), real=False)
            metric.subset_size = min(1000, len(g.paths), len(data.references))
            torch.manual_seed(0)  # the subset draws t2i-bench makes with its seeded generator
            mean, std = (float(v) for v in metric.compute())
            out[("kid", g.checkpoint, g.prompt_type)] = mean
            out[("kid_std", g.checkpoint, g.prompt_type)] = std
            metric.reset()
    return out


# ------------------------------------------------------------------------ style loss


def style_loss_base(data: ScoringInput, zoo: Zoo) -> Values:
    """Gram style loss (VGG-19 relu1_1..relu5_1) of each adapter image vs its base twin."""
    from t2i_bench.backbones.vgg import STYLE_LAYERS

    features = zoo.model("vgg")
    taps = sorted(STYLE_LAYERS.values())
    preprocess = T.Compose(
        [
            T.PILToTensor(),
            T.Resize(64, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.CenterCrop(64),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )

    def grams(paths: Sequence[Path]) -> list[torch.Tensor]:
        x = torch.stack([preprocess(im) for im in read(paths)])
        out = []
        for i, layer in enumerate(features[: taps[-1] + 1]):
            x = layer(x)
            if i in taps:
                b, c, h, w = x.shape
                flat = x.double().reshape(b, c, h * w)
                out.append(flat @ flat.transpose(1, 2) / (c * h * w))
        return out

    out: Values = {}
    with torch.inference_mode():
        for g in data.applicable("style_loss_base"):
            pairs = [(p, b) for p, b in zip(g.paths, g.base_paths, strict=True) if b is not None]
            own, base = grams([p for p, _ in pairs]), grams([b for _, b in pairs])
            loss = sum(((a - b) ** 2).sum(dim=(1, 2)) for a, b in zip(own, base, strict=True))
            out[("style_loss_base", g.checkpoint, g.prompt_type)] = float(loss.mean())
    return out


SCRIPTS: dict[str, Callable[[ScoringInput, Zoo], Values]] = {
    "clip_i": clip_i,
    "clip_t": clip_t,
    "dino": dino,
    "scd": scd,
    "vendi": vendi,
    "dino_base": dino_base,
    "lpips_div": lpips_div,
    "fid": fid,
    "kid": kid,
    "style_loss_base": style_loss_base,
}
