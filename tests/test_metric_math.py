"""Metric math against independent references, on random inputs, with stated tolerances."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported

import warnings

import numpy as np
import pytest
import torch

from t2i_bench.metrics import functional as F


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------- cosine


def test_cosine_family_against_brute_force() -> None:
    """Tolerance 1e-12 absolute vs explicit per-pair loops."""
    g, r = _rng(1).normal(size=(7, 5)), _rng(2).normal(size=(4, 5))
    pairs = [[float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for b in r] for a in g]
    np.testing.assert_allclose(F.cosine_matrix(g, r), pairs, atol=1e-12)
    assert F.mean_pairwise_cosine(g, r) == pytest.approx(np.mean(pairs), abs=1e-12)
    gu = g / np.linalg.norm(g, axis=1, keepdims=True)
    ru = r / np.linalg.norm(r, axis=1, keepdims=True)
    d = gu.mean(0) - ru.mean(0)
    assert F.centroid_sq_distance(g, r) == pytest.approx(float(np.sum(d * d)), abs=1e-12)
    assert F.centroid_sq_distance(g, g) == pytest.approx(0.0, abs=1e-15)
    # torch input is accepted
    assert F.mean_pairwise_cosine(torch.tensor(g), torch.tensor(r)) == pytest.approx(
        np.mean(pairs), abs=1e-12
    )


def test_paired_cosine_brute_force() -> None:
    """dino_base / prompt_similarity / clip_t rows: 1e-12 vs a per-row loop."""
    a, b = _rng(18).normal(size=(6, 7)), _rng(19).normal(size=(6, 7))
    loop = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(F.paired_cosine(a, b), loop, atol=1e-12)
    with pytest.raises(ValueError):
        F.paired_cosine(a, b[:3])


def test_clip_score_conventions() -> None:
    img = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    txt = np.array([[1.0, 0.0], [-1.0, 0.0], [-0.6, 0.8]])
    raw = F.clip_score(img, txt, "raw")
    np.testing.assert_allclose(raw, [1.0, -np.sqrt(0.5), 0.8], atol=1e-12)
    np.testing.assert_allclose(F.clip_score(img, txt, "x2.5"), [2.5, 0.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(F.clip_score(img, txt, "x100"), [100.0, 0.0, 80.0], atol=1e-12)
    np.testing.assert_allclose(F.clip_score(img, txt[0], "raw"), [1.0, np.sqrt(0.5), 0.0])
    with pytest.raises(ValueError, match="convention"):
        F.clip_score(img, txt, "x3")  # type: ignore[arg-type]


def test_pickscore_formula() -> None:
    img, txt = _rng(16).normal(size=(5, 8)), _rng(17).normal(size=(5, 8))
    cos = [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(img, txt, strict=True)]
    np.testing.assert_allclose(F.pickscore(img, txt, 100.0), 100.0 * np.array(cos), rtol=1e-12)


class _FeatureCLIP(torch.nn.Module):
    """A stand-in CLIP whose "images" and "texts" are indices into given feature rows, so
    torchmetrics' own CLIPScore code (normalisation, 100·cos, mean, clamp) runs on them."""

    def __init__(self, img: np.ndarray, txt: np.ndarray) -> None:
        super().__init__()
        self.img, self.txt = torch.tensor(img), torch.tensor(txt)
        self.config = object()

    def get_image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.img[pixels[:, 0, 0, 0].long()]

    def get_text_features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.txt[ids[:, 0]]

    def processor(self, images=None, text=None, **kwargs):
        if images is not None:
            return {"pixel_values": torch.stack(images)}
        ids = torch.tensor([[int(t)] for t in text])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _torchmetrics_clip_score(img: np.ndarray, txt: np.ndarray) -> float:
    from torchmetrics.functional.multimodal import clip_score

    model = _FeatureCLIP(img, txt)
    images = [torch.full((1, 1, 1), float(i)) for i in range(len(img))]
    texts = [str(i) for i in range(len(txt))]
    return float(clip_score(images, texts, lambda: (model, model.processor)))


def test_clip_score_x100_matches_torchmetrics() -> None:
    """torchmetrics' CLIPScore itself, fed our features: with every cosine positive it equals
    the mean of our per-image ``x100`` values (1e-5: torchmetrics works in float32)."""
    rng = _rng(3)
    img = rng.normal(size=(9, 16)) + 2.0
    txt = rng.normal(size=(9, 16)) + 2.0
    assert (F.clip_score(img, txt, "raw") > 0).all()
    ours = float(np.mean(F.clip_score(img, txt, "x100")))
    assert _torchmetrics_clip_score(img, txt) == pytest.approx(ours, rel=1e-5)


def test_torchmetrics_clamps_the_mean_and_x100_clamps_each_image() -> None:
    """The documented difference (docs/metrics.md): torchmetrics returns max(mean(100·cos), 0);
    ``clip_t_x100`` is 100·max(cos, 0) per image, so with negative cosines the means differ."""
    img, txt = _rng(3).normal(size=(9, 16)), _rng(4).normal(size=(9, 16))
    raw = F.clip_score(img, txt, "raw")
    assert (raw < 0).any() and (raw > 0).any()
    reference = _torchmetrics_clip_score(img, txt)
    assert reference == pytest.approx(max(100 * float(np.mean(raw)), 0.0), rel=1e-5, abs=1e-5)
    assert float(np.mean(F.clip_score(img, txt, "x100"))) > reference + 1.0


# ------------------------------------------------------------------------------------ FID


def _pytorch_fid(x: np.ndarray, y: np.ndarray) -> float:
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(
            calculate_frechet_distance(
                x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
            )
        )


@pytest.mark.parametrize(("n", "d"), [(300, 24), (20, 48)], ids=["full-rank", "n<d"])
def test_fid_matches_pytorch_fid(n: int, d: int) -> None:
    """Relative tolerance 1e-6 vs pytorch-fid's scipy-sqrtm formula on np.cov statistics."""
    x = _rng(5).normal(size=(n, d))
    y = _rng(6).normal(loc=0.3, scale=1.2, size=(n + 3, d))
    ref = _pytorch_fid(x, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = F.fid(x, y)
    assert ours.value == pytest.approx(ref, rel=1e-6)
    assert ours.low_sample == (n <= d)
    assert any("rank-deficient" in str(w.message) for w in caught) == (n <= d)
    assert (ours.n_gen, ours.n_ref, ours.dim) == (n, n + 3, d)


def test_fid_from_stats_direct_and_singular_retry() -> None:
    x, y = _rng(7).normal(size=(200, 8)), _rng(8).normal(size=(150, 8))
    r = F.fid_from_stats(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert r.value == pytest.approx(_pytorch_fid(x, y), rel=1e-6)
    assert not r.eps_added and not r.low_sample
    assert F.fid(x, x).value == pytest.approx(0.0, abs=1e-7)
    # a non-finite root triggers the eps·I retry, which is flagged
    real_sqrtm, calls = F._sqrtm, []

    def flaky(a: np.ndarray) -> np.ndarray:
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    F._sqrtm = flaky
    try:
        retried = F.fid_from_stats(x.mean(0), s1, y.mean(0), s2, eps=1e-3)
    finally:
        F._sqrtm = real_sqrtm
    assert retried.eps_added and np.isfinite(retried.value)
    np.testing.assert_allclose(calls[1], (s1 + 1e-3 * np.eye(8)) @ (s2 + 1e-3 * np.eye(8)))


def test_feature_stats_streaming_and_merge() -> None:
    """Chunked accumulation and merging equal np.mean / np.cov to 1e-10 relative."""
    x = _rng(9).normal(loc=5.0, size=(250, 12))
    whole = F.FeatureStats.from_features(x)
    parts = F.FeatureStats(dim=12)
    for chunk in np.array_split(x[:100], 7):
        parts.update(chunk)
    merged = parts + F.FeatureStats.from_features(x[100:])
    for s in (whole, merged):
        assert s.n == 250
        np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-10)
        np.testing.assert_allclose(s.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    assert F.fid(merged, x[:50]).value == pytest.approx(F.fid(x, x[:50]).value, rel=1e-8)
    with pytest.raises(ValueError):
        parts.update(np.zeros((2, 3)))


# ------------------------------------------------------------------------------------ KID


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize(("n_gen", "n_ref", "subset"), [(60, 45, 30), (25, 40, 1000)])
def test_kid_matches_torchmetrics(n_gen: int, n_ref: int, subset: int) -> None:
    """Mean and std within 1e-10 relative of torchmetrics' KernelInceptionDistance fed the same
    float64 features (identity feature extractor), with the same subset draws."""
    from torchmetrics.image.kid import KernelInceptionDistance

    gen = _rng(10).normal(size=(n_gen, 32))
    ref = _rng(11).normal(loc=0.2, size=(n_ref, 32))
    size = min(subset, n_gen, n_ref)  # torchmetrics refuses subset_size > n: adapt it alike
    metric = KernelInceptionDistance(feature=_Identity(), subsets=20, subset_size=size)
    metric.update(torch.tensor(ref), real=True)
    metric.update(torch.tensor(gen), real=False)
    torch.manual_seed(123)
    tm_mean, tm_std = (float(v) for v in metric.compute())
    mean, std = F.kid(gen, ref, subset_size=subset, subsets=20, seed=123)
    assert mean == pytest.approx(tm_mean, rel=1e-10)
    assert std == pytest.approx(tm_std, rel=1e-8, abs=1e-14)


def test_kid_basic_properties() -> None:
    x = _rng(12).normal(size=(40, 8))
    m, s = F.kid(x, x, subset_size=40, subsets=3)
    assert m == pytest.approx(F.poly_mmd2_unbiased(x, x), abs=1e-12) and s < 1e-12
    with pytest.raises(ValueError):
        F.kid(x[:1], x)


# ---------------------------------------------------------------------------------- Vendi


@pytest.mark.parametrize(("n", "d"), [(30, 8), (10, 40)])
def test_vendi_matches_vendi_score_package(n: int, d: int) -> None:
    """Relative tolerance 1e-8 vs vendi_score.vendi: score_X for q=1; for q in (0.5, 2) the
    package's full-rank form (score_dual when d < n, score_K otherwise), because in the other
    form round-off eigenvalues of ±1e-16 contribute (1e-16)^0.5 each to the q=0.5 sum."""
    from vendi_score import vendi

    x = _rng(13).normal(size=(n, d))
    assert F.vendi_score(x) == pytest.approx(vendi.score_X(x, normalize=True), rel=1e-8)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    for q in (0.5, 2):
        ref = vendi.score_dual(x, q=q) if d < n else vendi.score_K(xn @ xn.T, q=q)
        assert F.vendi_score(x, q=q) == pytest.approx(ref, rel=1e-8)
    # bounds: identical rows -> 1, orthogonal rows -> n
    assert F.vendi_score(np.ones((5, 3))) == pytest.approx(1.0, abs=1e-9)
    assert F.vendi_score(np.eye(6)) == pytest.approx(6.0, rel=1e-9)


# ------------------------------------------------------------------------------ Gram loss


def test_gram_style_loss_vs_hand_computation() -> None:
    """1e-12 relative vs explicit loops over channels; the embedding form agrees to 1e-10."""
    rng = _rng(14)
    shapes = [(3, 5, 4), (6, 3, 3)]
    fa = [rng.normal(size=(2, *s)) for s in shapes]
    fb = [rng.normal(size=(2, *s)) for s in shapes]
    expected = np.zeros(2)
    for b in range(2):
        for la, lb in zip(fa, fb, strict=True):
            c, h, w = la.shape[1:]
            for i in range(c):
                for j in range(c):
                    ga = sum(la[b, i].ravel()[k] * la[b, j].ravel()[k] for k in range(h * w))
                    gb = sum(lb[b, i].ravel()[k] * lb[b, j].ravel()[k] for k in range(h * w))
                    expected[b] += ((ga - gb) / (c * h * w)) ** 2
    np.testing.assert_allclose(F.gram_style_loss(fa, fb), expected, rtol=1e-12)
    ea, eb = F.gram_embedding(fa), F.gram_embedding(fb)
    assert ea.shape == (2, 3 * 4 // 2 + 6 * 7 // 2)
    np.testing.assert_allclose(F.sq_distance_pairs(ea, eb), expected, rtol=1e-10)
    # single (c,h,w) inputs work too
    one = F.gram_style_loss([x[0] for x in fa], [x[0] for x in fb])
    assert one.shape == (1,) and one[0] == pytest.approx(expected[0], rel=1e-12)


# -------------------------------------------------------------------------- pairwise/LPIPS


def test_pairwise_helpers() -> None:
    e = _rng(15).normal(size=(6, 10))
    brute = np.mean([np.sum((e[i] - e[j]) ** 2) for i in range(6) for j in range(i + 1, 6)])
    assert F.lpips_diversity(e) == pytest.approx(brute, rel=1e-12)
    calls = []

    def dist(a, b):
        calls.append(len(a))
        return [float(np.sum((x - y) ** 2)) for x, y in zip(a, b, strict=True)]

    assert F.mean_pairwise(list(e), dist) == pytest.approx(brute, rel=1e-12)
    assert calls == [15]
    with pytest.raises(ValueError):
        F.lpips_diversity(e[:1])


# ---------------------------------------------------------------- backbones: batch invariance


def _images(n: int, seed: int, size: tuple[int, int] = (72, 96)) -> list:
    from PIL import Image

    rng = _rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize(
    "name",
    [
        "clip_vit_b32",
        "dinov2_vitl14",
        "dino_vits16",
        "inception_v3_fid",
        "lpips_alex",
        "vgg19_gram",
        "pickscore",
        "image_reward",
    ],
)
def test_backbone_batch_size_invariance(name: str) -> None:
    """Batch sizes 1, 7 and 32 give the same embeddings within 1e-5 (absolute)."""
    from t2i_bench.backbones.base import load_backbone

    ims = _images(9, seed=20)
    outs = []
    for bs in (1, 7, 32):
        bb = load_backbone(name, "tiny", batch_size=bs)
        outs.append(bb.embed_images(ims))
        assert bb.forward_calls == -(-9 // bs)
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["clip_vit_b32", "pickscore"])
def test_text_embedding_batch_size_invariance(name: str) -> None:
    """Text embeddings (padding differs per batch) agree within 1e-5 for batch sizes 1, 7, 32."""
    from t2i_bench.backbones.base import load_backbone

    texts = [f"a photo of olis {'very ' * (i % 4)}stuffed toy number {i}" for i in range(9)]
    outs = [load_backbone(name, "tiny", batch_size=bs).embed_texts(texts) for bs in (1, 7, 32)]
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], atol=1e-5, rtol=0)


def test_image_reward_score_batch_size_invariance() -> None:
    from t2i_bench.backbones.base import load_backbone

    ims = _images(9, seed=23)
    prompts = [f"a {'big ' * (i % 3)}dog {i}" for i in range(9)]
    outs = [
        load_backbone("image_reward", "tiny", batch_size=bs).score(ims, prompts)
        for bs in (1, 7, 32)
    ]
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------- LPIPS


def test_lpips_backbone_matches_lpips_package(tmp_path) -> None:
    """Our LPIPS (per-image embeddings, squared distance) vs lpips.LPIPS(net='alex', v0.1) with
    the same weights: the package's bundled linear layers and its AlexNet (random, seeded)
    saved as a torchvision checkpoint and read by our real loader. Relative tolerance 1e-5."""
    lpips = pytest.importorskip("lpips")

    from t2i_bench.backbones.lpips_net import make_lpips

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    sd = {}  # torchvision layout (features.<index>.<param>) from lpips' slice<k>.<index>.<param>
    for key, value in ref.net.state_dict().items():
        _, index, param = key.split(".")
        sd[f"features.{index}.{param}"] = value
    sd["classifier.1.weight"] = torch.zeros(2, 2)  # real files carry a classifier: ignored
    ckpt = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(sd, ckpt)
    ours = make_lpips("real", alexnet_weights=str(ckpt), size=96, batch_size=3)
    assert ours.weights == "alexnet-owt+lpips-v0.1"
    a, b = _images(4, seed=21, size=(96, 96)), _images(4, seed=22, size=(96, 96))

    def to_tensor(images: list) -> torch.Tensor:
        arr = np.stack([np.asarray(i) for i in images]).astype(np.float32) / 255.0
        return torch.from_numpy(arr).permute(0, 3, 1, 2) * 2 - 1

    with torch.no_grad():
        expected = ref(to_tensor(a), to_tensor(b)).flatten().double().numpy()
    np.testing.assert_allclose(ours.distance(a, b), expected, rtol=1e-5)
    # diversity helper: mean pairwise LPIPS within a group == the package, pair by pair
    group = a + b
    with torch.no_grad():
        t = to_tensor(group)
        pairs = [float(ref(t[i : i + 1], t[j : j + 1])) for i in range(8) for j in range(i + 1, 8)]
    assert F.lpips_diversity(ours.embed_images(group)) == pytest.approx(np.mean(pairs), rel=1e-5)
    assert F.mean_pairwise(group, ours.distance) == pytest.approx(np.mean(pairs), rel=1e-5)


@pytest.mark.parametrize(("n1", "n2", "d"), [(40, 12, 256), (12, 40, 256), (300, 80, 32)])
def test_fid_exact_low_rank_matches_pytorch_fid(n1: int, n2: int, d: int) -> None:
    """The nuclear-norm form used for small sets equals pytorch-fid's sqrtm formula."""
    rng = np.random.default_rng(n1 * 1000 + d)
    x = rng.normal(size=(n1, d))
    y = rng.normal(size=(n2, d)) * 1.3 + 0.2
    result = F.fid_exact_low_rank(x, y)
    assert result.value == pytest.approx(_pytorch_fid(x, y), rel=1e-6)
    assert result.low_sample == (min(n1, n2) <= d) and not result.eps_added
