"""Pure metric math on feature arrays: no models, no I/O, no global state.

Every function takes numpy arrays (or anything ``np.asarray`` accepts, torch CPU tensors
included), computes in float64 and returns Python floats or float64 arrays. Conventions that
published numbers disagree on are explicit arguments; see ``docs/metrics.md``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.linalg
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence[Sequence[float]]
ClipConvention = Literal["raw", "x2.5", "x100"]
CLIP_CONVENTIONS: tuple[str, ...] = ("raw", "x2.5", "x100")


def _f64(x: ArrayLike, ndim: int | None = None, name: str = "x") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {arr.shape}")
    return arr


def l2_normalize(x: ArrayLike, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (float64); zero rows stay zero."""
    a = _f64(x, 2)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)


def resample_weights(draws: np.ndarray, n: int) -> np.ndarray:
    """``(n_boot, n)`` counts: how often each of n items appears in each resample row."""
    rows = np.repeat(np.arange(draws.shape[0]), draws.shape[1])
    weights = np.zeros((draws.shape[0], n), dtype=np.float64)
    np.add.at(weights, (rows, draws.reshape(-1)), 1.0)
    return weights


# ------------------------------------------------------------------------- cosine family


def cosine_matrix(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """(n, m) cosine similarities between the rows of ``a`` (n, d) and ``b`` (m, d)."""
    return l2_normalize(a) @ l2_normalize(b).T


def paired_cosine(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """(n,) cosine of row i of ``a`` with row i of ``b`` (a (d,) ``b`` is broadcast)."""
    bb = _f64(b)
    bb = bb[None, :] if bb.ndim == 1 else bb
    an, bn = l2_normalize(a), l2_normalize(bb)
    if bn.shape[0] == 1:
        bn = np.broadcast_to(bn, an.shape)
    if an.shape != bn.shape:
        raise ValueError(f"paired_cosine: shapes {an.shape} and {bn.shape} differ")
    return np.einsum("ij,ij->i", an, bn)


def mean_pairwise_cosine(gen: ArrayLike, ref: ArrayLike) -> float:
    """Mean cosine over all (generated, reference) pairs: CLIP-I and DINO similarity.

    Equal to the cosine-free form ``mean(u_gen) . mean(u_ref)`` of the unit vectors, which is
    how it is computed (O((n+m)d) memory).
    """
    g, r = l2_normalize(gen), l2_normalize(ref)
    if len(g) == 0 or len(r) == 0:
        raise ValueError("mean_pairwise_cosine needs at least one generated and one reference row")
    return float(g.mean(axis=0) @ r.mean(axis=0))


def centroid_sq_distance(gen: ArrayLike, ref: ArrayLike) -> float:
    """Squared Euclidean distance between the centroids of the L2-normalised rows (SCD)."""
    g, r = l2_normalize(gen), l2_normalize(ref)
    d = g.mean(axis=0) - r.mean(axis=0)
    return float(d @ d)


def clip_score(img: ArrayLike, txt: ArrayLike, convention: ClipConvention = "raw") -> np.ndarray:
    """Per-image CLIP score of image row i with text row i (or one text row for all).

    ``raw``: cosine; ``x2.5``: 2.5·max(cos, 0) (CLIPScore, Hessel et al.);
    ``x100``: 100·max(cos, 0) (torchmetrics ``CLIPScore``).
    """
    cos = paired_cosine(img, txt)
    if convention == "raw":
        return cos
    if convention == "x2.5":
        return 2.5 * np.maximum(cos, 0.0)
    if convention == "x100":
        return 100.0 * np.maximum(cos, 0.0)
    raise ValueError(f"unknown CLIP score convention {convention!r}; use one of {CLIP_CONVENTIONS}")


def pickscore(img: ArrayLike, txt: ArrayLike, logit_scale: float) -> np.ndarray:
    """Per-image PickScore: ``logit_scale`` · cos(image_i, text_i), the raw logit-scaled value
    (``logit_scale`` is ``exp`` of the model's learned scale, ~100 for PickScore_v1)."""
    return float(logit_scale) * paired_cosine(img, txt)


# ------------------------------------------------------------------------------------ FID


@dataclass
class FeatureStats:
    """Float64 sufficient statistics of a feature set: count, sum and sum of outer products.

    Memory is O(d²) whatever the number of images; two stats merge by addition, so shards
    (or cached per-image features read in chunks) can be accumulated independently.
    """

    dim: int
    n: int = 0
    sum: np.ndarray = field(default=None)  # type: ignore[assignment]
    sum_outer: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.sum is None:
            self.sum = np.zeros(self.dim, dtype=np.float64)
        if self.sum_outer is None:
            self.sum_outer = np.zeros((self.dim, self.dim), dtype=np.float64)

    @classmethod
    def from_features(cls, feats: ArrayLike) -> FeatureStats:
        f = _f64(feats, 2, "features")
        stats = cls(dim=f.shape[1])
        stats.update(f)
        return stats

    def update(self, feats: ArrayLike) -> FeatureStats:
        """Add the rows of ``feats`` (n, dim); returns self."""
        f = _f64(feats, 2, "features")
        if f.shape[1] != self.dim:
            raise ValueError(f"features have dim {f.shape[1]}, stats have {self.dim}")
        self.n += f.shape[0]
        self.sum += f.sum(axis=0)
        self.sum_outer += f.T @ f
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """A new stats object holding both sets."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge stats of dim {self.dim} and {other.dim}")
        return FeatureStats(
            self.dim, self.n + other.n, self.sum + other.sum, self.sum_outer + other.sum_outer
        )

    __add__ = merge

    @property
    def mean(self) -> np.ndarray:
        if self.n < 1:
            raise ValueError("no features accumulated")
        return self.sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (denominator n-1), as ``np.cov(x, rowvar=False)``."""
        if self.n < 2:
            raise ValueError("covariance needs at least 2 features")
        mu = self.mean
        c = (self.sum_outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return (c + c.T) / 2.0


@dataclass(frozen=True)
class FIDResult:
    """A Fréchet distance with its numerical provenance."""

    value: float
    eps_added: bool  # eps·I was added to both covariances (singular / non-finite product)
    max_imag: float  # largest |imaginary part| discarded from the matrix square root
    low_sample: bool  # some set had n <= feature dim: covariance rank-deficient, FID biased
    n_gen: int | None = None
    n_ref: int | None = None
    dim: int | None = None


def _sqrtm(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = scipy.linalg.sqrtm(a)
    return out[0] if isinstance(out, tuple) else out


def fid_from_stats(
    mu1: ArrayLike,
    sigma1: ArrayLike,
    mu2: ArrayLike,
    sigma2: ArrayLike,
    eps: float = 1e-6,
    n1: int | None = None,
    n2: int | None = None,
) -> FIDResult:
    """Fréchet distance ||mu1-mu2||² + Tr(S1 + S2 - 2·sqrtm(S1·S2)), in float64.

    Uses ``scipy.linalg.sqrtm`` and keeps the real part of the root; when the root is not
    finite, retries with ``eps``·I added to both covariances. Pass the sample counts to get
    ``low_sample`` (and a ``UserWarning``) when ``min(n1, n2) <= dim``.
    """
    m1, m2 = _f64(mu1, 1, "mu1"), _f64(mu2, 1, "mu2")
    s1, s2 = _f64(sigma1, 2, "sigma1"), _f64(sigma2, 2, "sigma2")
    d = m1.shape[0]
    if m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"FID shapes disagree: {m1.shape} {s1.shape} {m2.shape} {s2.shape}")
    covmean = _sqrtm(s1 @ s2)
    eps_added = False
    if not np.isfinite(covmean).all():
        eps_added = True
        off = np.eye(d) * eps
        covmean = _sqrtm((s1 + off) @ (s2 + off))
    max_imag = 0.0
    if np.iscomplexobj(covmean):
        max_imag = float(np.abs(covmean.imag).max()) if covmean.size else 0.0
        covmean = covmean.real
    diff = m1 - m2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    counts = [n for n in (n1, n2) if n is not None]
    low = bool(counts) and min(counts) <= d
    if low:
        warnings.warn(
            f"FID with {min(counts)} samples for {d}-d features: covariance is rank-deficient "
            "and the value is strongly biased; compare only values with equal sample counts",
            UserWarning,
            stacklevel=2,
        )
    return FIDResult(value, eps_added, max_imag, low, n1, n2, d)


def fid(
    gen: ArrayLike | FeatureStats, ref: ArrayLike | FeatureStats, eps: float = 1e-6
) -> FIDResult:
    """FID between two feature sets, given as (n, d) arrays or :class:`FeatureStats`."""
    a = gen if isinstance(gen, FeatureStats) else FeatureStats.from_features(gen)
    b = ref if isinstance(ref, FeatureStats) else FeatureStats.from_features(ref)
    return fid_from_stats(a.mean, a.cov, b.mean, b.cov, eps=eps, n1=a.n, n2=b.n)


def fid_exact_low_rank(gen: ArrayLike, ref: ArrayLike) -> FIDResult:
    """FID from the features themselves, exact and fast when a set has fewer samples than
    dimensions (the usual case for concept references).

    With centred features A₁ (n₁×d), A₂ (n₂×d) and Sᵢ = AᵢᵀAᵢ/(nᵢ−1), the non-zero
    eigenvalues of S₁S₂ are the squared singular values of A₁A₂ᵀ/√((n₁−1)(n₂−1)), so
    Tr sqrtm(S₁S₂) is that matrix's nuclear norm: O(n₁n₂d) instead of a d×d ``sqrtm``, and real
    by construction (no imaginary part to drop, no eps retry needed).
    """
    g, r = _f64(gen, 2, "gen"), _f64(ref, 2, "ref")
    n1, n2, d = g.shape[0], r.shape[0], g.shape[1]
    if n1 < 2 or n2 < 2 or r.shape[1] != d:
        raise ValueError(f"FID needs two (n>=2, d) sets, got {g.shape} and {r.shape}")
    a1, a2 = g - g.mean(axis=0), r - r.mean(axis=0)
    scale = np.sqrt((n1 - 1) * (n2 - 1))
    cross_trace = np.linalg.svd(a1 @ a2.T / scale, compute_uv=False).sum()
    diff = g.mean(axis=0) - r.mean(axis=0)
    trace1, trace2 = (a1 * a1).sum() / (n1 - 1), (a2 * a2).sum() / (n2 - 1)
    value = float(diff @ diff + trace1 + trace2 - 2.0 * cross_trace)
    return FIDResult(value, False, 0.0, min(n1, n2) <= d, n1, n2, d)


# ------------------------------------------------------------------------------------ KID


def poly_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> np.ndarray:
    """(gamma·x·yᵀ + coef)^degree, gamma defaulting to 1/dim."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * g + coef) ** degree


def poly_mmd2_unbiased(
    x: ArrayLike, y: ArrayLike, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> float:
    """Unbiased MMD² with the polynomial kernel between equal-size sets ``x`` and ``y`` (m, d)."""
    a, b = _f64(x, 2), _f64(y, 2)
    m = a.shape[0]
    if b.shape[0] != m or m < 2:
        raise ValueError(f"poly MMD needs two sets of equal size >= 2, got {m} and {b.shape[0]}")
    kxx, kyy = poly_kernel(a, a, degree, gamma, coef), poly_kernel(b, b, degree, gamma, coef)
    kxy = poly_kernel(a, b, degree, gamma, coef)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kid(
    gen: ArrayLike,
    ref: ArrayLike,
    subset_size: int = 1000,
    subsets: int = 100,
    seed: int = 0,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, population std) of the unbiased poly MMD² over subsets.

    The subset size is ``min(subset_size, n_gen, n_ref)``. Each subset draws a permutation of
    the reference set, then of the generated set, from a ``torch.Generator`` seeded with
    ``seed`` (the same draw order as torchmetrics' ``KernelInceptionDistance``).
    """
    g, r = _f64(gen, 2, "gen"), _f64(ref, 2, "ref")
    size = min(int(subset_size), g.shape[0], r.shape[0])
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {g.shape[0]} and {r.shape[0]}")
    rng = torch.Generator().manual_seed(int(seed))
    scores = np.empty(int(subsets), dtype=np.float64)
    for i in range(int(subsets)):
        ri = torch.randperm(r.shape[0], generator=rng)[:size].numpy()
        gi = torch.randperm(g.shape[0], generator=rng)[:size].numpy()
        scores[i] = poly_mmd2_unbiased(r[ri], g[gi], degree, gamma, coef)
    return float(scores.mean()), float(scores.std())


def kid_replicates(
    gen: ArrayLike,
    ref: ArrayLike,
    draws: np.ndarray,
    subset_size: int = 1000,
    subsets: int = 100,
    seed: int = 0,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
) -> np.ndarray:
    """``(n_boot, 2)``: :func:`kid` (mean, std over subsets) of each resample ``gen[draws[b]]``.

    The subsets are drawn exactly as :func:`kid` draws them (the same generator, seed and
    sizes, which do not depend on the images), and each subset's unbiased MMD² is assembled
    from the kernel matrices of the distinct images and the resample's counts, so the value
    of row b equals ``kid(gen[draws[b]], ref, ...)`` without forming the repeated images.
    """
    g, r = _f64(gen, 2, "gen"), _f64(ref, 2, "ref")
    n, n_ref = g.shape[0], r.shape[0]
    size = min(int(subset_size), n, n_ref)
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {n} and {n_ref}")
    k_gg = poly_kernel(g, g, degree, gamma, coef)
    k_rg = poly_kernel(r, g, degree, gamma, coef)
    k_rr = poly_kernel(r, r, degree, gamma, coef)
    diag = np.diag(k_gg)
    rng = torch.Generator().manual_seed(int(seed))
    pairs = size * (size - 1)
    scores = np.empty((draws.shape[0], int(subsets)), dtype=np.float64)
    for s in range(int(subsets)):
        ri = torch.randperm(n_ref, generator=rng)[:size].numpy()
        gi = torch.randperm(n, generator=rng)[:size].numpy()
        kxx = (k_rr[np.ix_(ri, ri)].sum() - np.trace(k_rr[np.ix_(ri, ri)])) / pairs
        w = resample_weights(draws[:, gi], n)
        kyy = (((w @ k_gg) * w).sum(axis=1) - w @ diag) / pairs
        kxy = w @ k_rg[ri].sum(axis=0) / (size * size)
        scores[:, s] = kxx + kyy - 2.0 * kxy
    return np.stack([scores.mean(axis=1), scores.std(axis=1)], axis=1)


# ---------------------------------------------------------------------------------- Vendi


def vendi_score(features: ArrayLike, q: float = 1.0) -> float:
    """Vendi score of order ``q`` with the linear kernel on L2-normalised rows.

    exp of the order-q Rényi entropy of the eigenvalues of K/n, K = X̂X̂ᵀ; the non-zero
    eigenvalues are taken from the (d, d) form X̂ᵀX̂/n when d < n. Ranges in [1, n].
    """
    x = l2_normalize(features)
    n = x.shape[0]
    if n == 0:
        raise ValueError("vendi_score needs at least one feature row")
    gram = (x.T @ x) if x.shape[1] < n else (x @ x.T)
    w = np.clip(scipy.linalg.eigvalsh(gram / n), 0.0, None)
    w = w[w > 0]
    if q == 1:
        entropy = float(-(w * np.log(w)).sum())
    elif math.isinf(q):
        entropy = float(-np.log(w.max()))
    else:
        entropy = float(np.log((w**q).sum()) / (1.0 - q))
    return float(np.exp(entropy))


# ------------------------------------------------------------------------ style and LPIPS


def gram_matrix(feat: ArrayLike) -> np.ndarray:
    """Gram matrix F·Fᵀ/(c·h·w) of activations (c, h, w) or a batch (b, c, h, w) -> (b, c, c)."""
    f = _f64(feat)
    if f.ndim == 3:
        f = f[None]
    if f.ndim != 4:
        raise ValueError(f"activations must be (c,h,w) or (b,c,h,w), got {f.shape}")
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return flat @ flat.transpose(0, 2, 1) / (c * h * w)


def gram_style_loss(feats_a: Sequence[ArrayLike], feats_b: Sequence[ArrayLike]) -> np.ndarray:
    """Style loss per image pair: Σ_layers Σ_ij (G_a - G_b)²_ij with G = F·Fᵀ/(c·h·w).

    ``feats_a``/``feats_b`` are per-layer activations (c,h,w) or (b,c,h,w) (VGG-19 conv1_1…
    conv5_1 in the benchmark). Returns a (b,) array.
    """
    if len(feats_a) != len(feats_b):
        raise ValueError(f"{len(feats_a)} layers vs {len(feats_b)}")
    total: np.ndarray | None = None
    for fa, fb in zip(feats_a, feats_b, strict=True):
        d = gram_matrix(fa) - gram_matrix(fb)
        term = (d**2).sum(axis=(1, 2))
        total = term if total is None else total + term
    if total is None:
        raise ValueError("gram_style_loss needs at least one layer")
    return total


def gram_embedding(feats: Sequence[ArrayLike]) -> np.ndarray:
    """(b, Σ c(c+1)/2) vectors whose squared distances equal :func:`gram_style_loss`.

    The upper triangle of each normalised Gram matrix, off-diagonal entries scaled by √2,
    so a backbone can cache one vector per image and the loss is ||e_a - e_b||².
    """
    parts = []
    for f in feats:
        g = gram_matrix(f)
        c = g.shape[1]
        iu = np.triu_indices(c)
        scale = np.where(iu[0] == iu[1], 1.0, math.sqrt(2.0))
        parts.append(g[:, iu[0], iu[1]] * scale)
    return np.concatenate(parts, axis=1)


def sq_distance_pairs(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """(n,) squared Euclidean distance of row i of ``a`` to row i of ``b``: style loss and LPIPS
    from the embeddings of :func:`gram_embedding` and the LPIPS backbone."""
    x, y = _f64(a, 2), _f64(b, 2)
    if x.shape != y.shape:
        raise ValueError(f"shapes {x.shape} and {y.shape} differ")
    d = x - y
    return np.einsum("ij,ij->i", d, d)


def mean_pairwise(items: Sequence, distance: Callable[[Sequence, Sequence], ArrayLike]) -> float:
    """Mean of ``distance`` over all unordered pairs i<j of ``items``.

    ``distance(left, right)`` gets two equal-length lists and returns one value per pair
    (e.g. an LPIPS network called on two image batches); it is called once, batched.
    """
    n = len(items)
    if n < 2:
        raise ValueError("a pairwise mean needs at least two items")
    i, j = np.triu_indices(n, k=1)
    vals = _f64(distance([items[k] for k in i], [items[k] for k in j])).reshape(-1)
    if vals.shape[0] != len(i):
        raise ValueError(f"distance returned {vals.shape[0]} values for {len(i)} pairs")
    return float(vals.mean())


def lpips_diversity(embeddings: ArrayLike) -> float:
    """Mean pairwise LPIPS within a group from LPIPS-backbone embeddings (LPIPS = ||e_i-e_j||²).

    Uses Σ_{i<j} ||e_i-e_j||² = n·Σ_i ||e_i-ē||² (no pairs formed, no cancellation).
    """
    e = _f64(embeddings, 2)
    n = e.shape[0]
    if n < 2:
        raise ValueError("LPIPS diversity needs at least two images")
    centred = e - e.mean(axis=0)
    total = n * float((centred * centred).sum())
    return total / (n * (n - 1) / 2)


# ------------------------------------------------------------------ similarity to references


def mean_similarity_to_refs(gen: ArrayLike, ref: ArrayLike) -> np.ndarray:
    """(n,) mean cosine of each generated row to all reference rows.

    Its mean over images is :func:`mean_pairwise_cosine`; with DreamSim embeddings it is
    1 − (mean DreamSim distance to the references), since DreamSim's distance is 1 − cos.
    """
    g, r = l2_normalize(gen), l2_normalize(ref)
    if len(g) == 0 or len(r) == 0:
        raise ValueError("similarity to references needs generated and reference rows")
    return g @ r.mean(axis=0)


def bleed(own: ArrayLike, base: ArrayLike, ref: ArrayLike) -> np.ndarray:
    """(n,) concept bleed per image pair: the adapter's image's mean cosine to the concept's
    references minus that of the base model's image for the same prompt and seed (row i of
    ``own`` and ``base``). Positive: the concept leaks into prompts that never mention it."""
    a, b = _f64(own, 2, "own"), _f64(base, 2, "base")
    if a.shape != b.shape:
        raise ValueError(f"bleed: shapes {a.shape} and {b.shape} differ")
    return mean_similarity_to_refs(a, ref) - mean_similarity_to_refs(b, ref)


# ---------------------------------------------------------------------------- memorisation


@dataclass(frozen=True)
class CopyResult:
    """Nearest-reference copy detection (see :func:`copy_detection`)."""

    rate: float  # share of generated images flagged as copies
    threshold: float  # cosine distance below which a generated image is a copy
    is_copy: np.ndarray  # (n,) bool
    nearest: np.ndarray  # (n,) index of each generated image's nearest reference
    distance: np.ndarray  # (n,) cosine distance to that reference
    reference_nn: np.ndarray  # (m,) each reference's distance to its nearest other reference


def copy_detection(gen: ArrayLike, ref: ArrayLike, quantile: float = 0.0) -> CopyResult:
    """Memorisation: which generated images are closer to a reference than references are to
    each other.

    Distances are cosine distances 1 − cos. The threshold is calibrated on the references:
    each reference's distance to its nearest *other* reference (leave-one-out) gives a
    distribution; the threshold is its ``quantile`` (0: the minimum, i.e. closer than any
    two references are to each other). A generated image is a copy when its distance to its
    nearest reference is strictly below the threshold.
    """
    g, r = l2_normalize(gen), l2_normalize(ref)
    if len(r) < 2:
        raise ValueError("copy detection needs at least 2 reference images to calibrate")
    if len(g) == 0:
        raise ValueError("copy detection needs at least one generated image")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    within = 1.0 - r @ r.T
    np.fill_diagonal(within, np.inf)
    reference_nn = within.min(axis=1)
    threshold = float(np.quantile(reference_nn, quantile))
    dist = 1.0 - g @ r.T
    nearest = dist.argmin(axis=1)
    nearest_distance = dist[np.arange(len(g)), nearest]
    is_copy = nearest_distance < threshold
    return CopyResult(
        float(is_copy.mean()), threshold, is_copy, nearest, nearest_distance, reference_nn
    )


# ----------------------------------------------------------------------------------- CMMD

CMMD_SIGMA = 10.0  # Gaussian RBF bandwidth of CMMD (Jayasumana et al. 2024)
CMMD_SCALE = 1000.0  # CMMD reports 1000 · MMD² for readability


def rbf_mmd2(
    x: ArrayLike,
    y: ArrayLike,
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
    biased: bool = True,
) -> float:
    """``scale`` · MMD² between the rows of ``x`` (n, d) and ``y`` (m, d) with the Gaussian RBF
    kernel k(a, b) = exp(−‖a − b‖² / (2σ²)).

    ``biased=True``: the minimum-variance V-statistic over all pairs, diagonal terms included
    (Gretton et al. 2012, Eq. 5), as the published CMMD code computes it; ``biased=False``:
    the unbiased U-statistic (within-set means exclude i = j).
    """
    a, b = _f64(x, 2, "x"), _f64(y, 2, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"MMD: feature dims {a.shape[1]} and {b.shape[1]} differ")
    n, m = a.shape[0], b.shape[0]
    if n < 1 or m < 1 or (not biased and min(n, m) < 2):
        raise ValueError(f"MMD needs non-empty sets (>= 2 each when unbiased), got {n} and {m}")
    gamma = 1.0 / (2.0 * sigma**2)

    def kernel(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        sq = (p * p).sum(1)[:, None] + (q * q).sum(1)[None, :] - 2.0 * p @ q.T
        return np.exp(-gamma * np.maximum(sq, 0.0))

    kxx, kyy, kxy = kernel(a, a), kernel(b, b), kernel(a, b)
    if biased:
        within = kxx.mean() + kyy.mean()
    else:
        within = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        within += (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(scale * (within - 2.0 * kxy.mean()))


def cmmd(gen: ArrayLike, ref: ArrayLike, biased: bool = True) -> float:
    """CMMD (Jayasumana et al., CVPR 2024): 1000 · MMD² with a Gaussian RBF kernel (σ = 10) on
    L2-normalised CLIP ViT-L/14@336 image embeddings (:func:`rbf_mmd2`)."""
    return rbf_mmd2(l2_normalize(gen), l2_normalize(ref), CMMD_SIGMA, CMMD_SCALE, biased)
