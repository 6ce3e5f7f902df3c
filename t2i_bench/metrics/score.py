"""The score stage: run each metric over each (checkpoint, concept, prompt type) group.

A group's stored values carry an identity: everything the metric declared it reads (its
version and settings, backbone identities, the exact images, texts, references and image
variants). A group whose identity is unchanged is never scored again; a stored value whose
group no longer exists (a checkpoint that now fails, a prompt type dropped) is removed.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from t2i_bench.analysis.bootstrap import (
    GROUP_BOOTSTRAP_SCHEME,
    GROUP_BOOTSTRAP_SEED,
    GROUP_REPLICATES,
    resample_plan,
)
from t2i_bench.backbones.heads import head_identity
from t2i_bench.concepts import Concept
from t2i_bench.hashing import stable_hash
from t2i_bench.metrics.base import SET_ITEM, Group, Metric, image_variants
from t2i_bench.metrics.embed import Backbones, embed_texts, features_reader
from t2i_bench.store import RenderedJob, RunStore, score_item


@dataclass
class ScoreSummary:
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    removed: int = 0  # stored groups whose inputs are gone
    warnings: list[str] = field(default_factory=list)


def build_groups(
    store: RunStore,
    concepts: dict[str, Concept],
    ref_shas: dict[str, list[str]],
    backbones: Backbones,
    base_name: str,
    metrics: list[Metric],
) -> list[Group]:
    """Groups of rendered images from the job table, in a stable order, each with the image
    variants the metrics declare."""
    jobs = store.rendered_jobs()
    lookup = {
        (j.checkpoint, j.concept, j.prompt_type, j.variant, j.template, j.seed): j.sha256
        for j in jobs
    }
    grouped: dict[tuple[str, str, str], list[RenderedJob]] = defaultdict(list)
    for job in jobs:
        if job.variant == "":
            grouped[(job.checkpoint, job.concept, job.prompt_type)].append(job)
    reader = features_reader(store, backbones)
    variants = image_variants(metrics)

    def text_reader(role: str, texts: list[str]) -> np.ndarray:
        return store.get_text_embeddings(backbones.identity(role), texts)

    groups = []
    for (ckpt, concept, ptype), members in grouped.items():
        found = {
            v.name: [
                lookup.get(
                    (
                        base_name if v.renderer == "base" else ckpt,
                        concept,
                        ptype,
                        v.job_tag,
                        m.template,
                        m.seed,
                    )
                )
                for m in members
            ]
            for v in variants.values()
        }
        groups.append(
            Group(
                checkpoint=ckpt,
                concept=concepts[concept],
                prompt_type=ptype,
                image_keys=[m.image_key for m in members],
                image_shas=[m.sha256 for m in members],
                prompts=[m.prompt for m in members],
                seeds=[m.seed for m in members],
                reference_shas=ref_shas[concept],
                features=reader,
                text_features=text_reader,
                backbone=backbones.get,
                head=backbones.head,
                templates=[m.template for m in members],
                variants=found,
            )
        )
    return groups


def group_identity(metric: Metric, group: Group, backbones: Backbones) -> str:
    """Everything the metric declared it reads for ``group`` (the metric's view of it)."""
    parts = {
        "metric": [metric.name, metric.version, metric.convention, metric.kind],
        "parameters": metric.parameters(),
        "backbones": {role: backbones.identity(role) for role in metric.roles},
        "images": group.image_keys,
        "pixels": group.image_shas,
        "prompts": group.prompts,
        "texts": metric.texts(group),
        "references": group.reference_shas,
        "variants": group.variants,
    }
    if metric.head:  # the head's weights are part of the value (absent key: identities unchanged)
        parts["head"] = head_identity(metric.head, backbones.config.profile)
    if metric.kind == "set":  # its bootstrap replicates are stored with the value
        parts["bootstrap"] = [GROUP_BOOTSTRAP_SCHEME, GROUP_REPLICATES, GROUP_BOOTSTRAP_SEED]
    return stable_hash(parts)


def set_replicates(metric: Metric, group: Group) -> np.ndarray:
    """The set metric's value on :data:`GROUP_REPLICATES` resamples of the group's images
    (:func:`~t2i_bench.analysis.bootstrap.resample_plan`: prompts, then seeds within each
    prompt; the same draws for every checkpoint with the same prompts and seeds)."""
    plan = resample_plan(
        group.prompts,
        group.seeds,
        n_boot=GROUP_REPLICATES,
        key=(group.concept.name, group.prompt_type),
        seed=GROUP_BOOTSTRAP_SEED,
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # e.g. FID's small-sample warning, once per resample
        return np.asarray(metric.replicates(group, plan), dtype=np.float64)


def _memoised(features: Callable[[str, list[str]], np.ndarray]):
    """A features reader that reads each (role, sha) once (the replicates reread them)."""
    cache: dict[tuple[str, str], np.ndarray] = {}

    def read(role: str, shas: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(s for s in shas if (role, s) not in cache))
        if missing:
            cache.update(zip(((role, s) for s in missing), features(role, missing), strict=True))
        if not shas:
            return features(role, [])
        return np.stack([cache[(role, s)] for s in shas])

    return read


def score_groups(
    store: RunStore,
    groups: list[Group],
    metrics: list[Metric],
    backbones: Backbones,
    base_name: str = "base",
    progress: Callable[[int, int], None] | None = None,
) -> ScoreSummary:
    """Compute every applicable (metric, group) whose identity changed; record failures; drop
    stored values of the metrics whose group no longer exists."""
    summary = ScoreSummary()
    stored = store.score_identities()
    notes: dict[str, list[str]] = store.get_meta("score_notes", {}) or {}
    work = [(m, g) for g in groups for m in metrics if m.applies_to(g, base_name)]
    views = [group.for_metric(metric) for metric, group in work]
    identities = [group_identity(m, v, backbones) for (m, _), v in zip(work, views, strict=True)]
    keys = [(m.name, g.checkpoint, g.concept.name, g.prompt_type) for m, g in work]
    rows = zip(work, views, identities, keys, strict=True)
    _embed_pending_texts(
        store, backbones, [(m, v) for (m, _), v, i, k in rows if stored.get(k) != i]
    )
    for done, (metric, group) in enumerate(work, 1):
        item = score_item(metric.name, group.checkpoint, group.concept.name, group.prompt_type)
        view, identity, key = views[done - 1], identities[done - 1], keys[done - 1]
        if stored.get(key) == identity:
            summary.skipped += 1
        else:
            try:
                if metric.needs_text and metric.backbone:
                    embed_texts(store, backbones, metric.backbone, metric.texts(view), 64)
                view = replace(view, features=_memoised(view.features))
                values = metric.compute(view)
                replicates = set_replicates(metric, view) if metric.kind == "set" else None
            except Exception as exc:  # a metric that raises never takes the run down
                store.record_failure("score", item, f"{type(exc).__name__}: {exc}")
                store.delete_scores([key])  # a value from older inputs must not survive
                notes.pop(item, None)
                summary.failed += 1
            else:
                notes[item] = list(view.notes)
                summary.warnings.extend(f"{item}: {note}" for note in view.notes)
                view.notes.clear()
                store.put_scores(*key, identity=identity, values=values, replicates=replicates)
                store.clear_failure("score", item)
                summary.computed += 1
        if progress:
            progress(done, len(work))
    current = {(m.name, g.checkpoint, g.concept.name, g.prompt_type) for m, g in work}
    names = {m.name for m in metrics}
    stale = [k for k in stored if k[0] in names and k not in current]
    store.delete_scores(stale)
    summary.removed = len(stale)
    for metric, ckpt, concept, ptype in stale:
        notes.pop(score_item(metric, ckpt, concept, ptype), None)
    store.set_meta("score_notes", {k: v for k, v in sorted(notes.items()) if v})
    return summary


def _embed_pending_texts(
    store: RunStore, backbones: Backbones, pending: list[tuple[Metric, Group]]
) -> None:
    """Embed the texts of every group about to be scored, one call per backbone role, so
    that the padded text batches are filled across groups (the per-group call in the loop
    then finds them cached). A failure here is left to that call, which records it for its
    group."""
    texts: dict[str, set[str]] = {}
    for metric, view in pending:
        if metric.needs_text and metric.backbone:
            texts.setdefault(metric.backbone, set()).update(metric.texts(view))
    for role, role_texts in texts.items():
        try:
            embed_texts(store, backbones, role, role_texts, 64)
        except Exception:  # recorded per group by the scoring loop's own call
            continue


def _reference_group(
    concept: Concept, images: list[str], references: list[str], reader, backbones: Backbones
) -> Group:
    return Group(
        checkpoint="references",
        concept=concept,
        prompt_type="reference",
        image_keys=images,
        image_shas=images,
        prompts=["reference"] * len(images),
        seeds=list(range(len(images))),
        reference_shas=references,
        features=reader,
        text_features=lambda role, texts: None,
        backbone=backbones.get,
    )


def score_baselines(
    store: RunStore,
    concepts: dict[str, Concept],
    ref_shas: dict[str, list[str]],
    metrics: list[Metric],
    backbones: Backbones,
) -> list[tuple[str, str, float | None]]:
    """Reference-vs-reference values that give set metrics context, per concept: fidelity
    and distribution metrics score the even reference images against the odd ones (split
    halves); diversity metrics score all references. None where a set is too small."""
    reader = features_reader(store, backbones)
    out = []
    for metric in metrics:
        if metric.baseline == "none":
            continue
        for name, concept in sorted(concepts.items()):
            refs = sorted(ref_shas[name])
            if metric.baseline == "split":
                group = _reference_group(concept, refs[0::2], refs[1::2], reader, backbones)
            else:
                group = _reference_group(concept, refs, refs, reader, backbones)
            try:
                value = metric.compute(group.for_metric(metric))[SET_ITEM]
            except (ValueError, np.linalg.LinAlgError):
                value = None
            out.append((metric.name, name, value))
    return out
