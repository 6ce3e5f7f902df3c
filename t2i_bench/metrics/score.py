"""The score stage: run each metric over each (checkpoint, concept, prompt type) group.

A group's stored values carry an identity (metric, version, backbone, the exact images and
references); a group whose identity is unchanged is never scored again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from t2i_bench.backbones.heads import load_head
from t2i_bench.concepts import Concept
from t2i_bench.hashing import stable_hash
from t2i_bench.metrics.base import SET_ITEM, Group, Metric
from t2i_bench.metrics.embed import Backbones, embed_texts, features_reader
from t2i_bench.plan import PLAIN
from t2i_bench.store import RunStore


@dataclass
class ScoreSummary:
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    warnings: list[str] = field(default_factory=list)


def build_groups(
    store: RunStore,
    concepts: dict[str, Concept],
    ref_shas: dict[str, list[str]],
    backbones: Backbones,
    base_name: str,
) -> list[Group]:
    """Groups of rendered images from the job table, in a stable order."""
    rows = store.conn.execute(
        "SELECT j.checkpoint, j.concept, j.prompt_type, j.template, j.prompt, j.seed, "
        "j.image_key, i.sha256 FROM jobs j JOIN images i ON i.image_key = j.image_key "
        "JOIN checkpoints c ON c.name = j.checkpoint "
        "ORDER BY c.position, j.concept, j.prompt_type, j.template, j.seed"
    ).fetchall()
    base = {
        (concept, ptype, template, seed): sha
        for ckpt, concept, ptype, template, _, seed, _, sha in rows
        if ckpt == base_name
    }
    grouped: dict[tuple[str, str, str], list[tuple]] = defaultdict(list)
    for row in rows:
        grouped[(row[0], row[1], row[2])].append(row)
    reader = features_reader(store, backbones)

    def text_reader(role: str, texts: list[str]):
        return store.get_text_embeddings(backbones.get(role).identity, texts)

    groups = []
    for (ckpt, concept, ptype), members in grouped.items():
        groups.append(
            Group(
                checkpoint=ckpt,
                concept=concepts[concept],
                prompt_type=ptype,
                image_keys=[m[6] for m in members],
                image_shas=[m[7] for m in members],
                prompts=[m[4] for m in members],
                seeds=[m[5] for m in members],
                base_shas=[base.get((m[1], m[2], m[3], m[5])) for m in members],
                plain_base_shas=[base.get((m[1], m[2] + PLAIN, m[3], m[5])) for m in members],
                reference_shas=ref_shas[concept],
                features=reader,
                text_features=text_reader,
                backbone=backbones.get,
                templates=[m[3] for m in members],
            )
        )
    return groups


def group_identity(metric: Metric, group: Group, backbones: Backbones) -> str:
    parts = {
        "metric": [metric.name, metric.version, metric.convention],
        "backbone": backbones.get(metric.backbone).identity if metric.backbone else None,
        "images": group.image_shas,
        "prompts": group.prompts,
        "references": group.reference_shas,
        "base": group.base_shas if metric.needs_base else None,
    }
    if metric.head:  # the head's weights are part of the value (absent key: identities unchanged)
        parts["head"] = load_head(metric.head, backbones.config.profile, backbones.device).identity
    return stable_hash(parts)


def score_groups(
    store: RunStore,
    groups: list[Group],
    metrics: list[Metric],
    backbones: Backbones,
    base_name: str = "base",
    progress: Callable[[int, int], None] | None = None,
) -> ScoreSummary:
    """Compute every applicable (metric, group) whose identity changed; record failures."""
    summary = ScoreSummary()
    stored = store.score_identities()
    notes: dict[str, list[str]] = store.get_meta("score_notes", {}) or {}
    work = [(m, g) for g in groups for m in metrics if g.prompt_type in m.prompt_types]
    for done, (metric, group) in enumerate(work, 1):
        item = f"{metric.name}/{group.checkpoint}/{group.concept.name}/{group.prompt_type}"
        if metric.needs_base and group.checkpoint == base_name:
            continue
        identity = group_identity(metric, group, backbones)
        key = (metric.name, group.checkpoint, group.concept.name, group.prompt_type)
        if stored.get(key) == identity:
            summary.skipped += 1
        else:
            try:
                if metric.needs_text and metric.backbone:
                    embed_texts(store, backbones.get(metric.backbone), metric.texts(group), 64)
                values = metric.compute(group)
            except Exception as exc:  # a metric that raises never takes the run down
                store.record_failure("score", item, f"{type(exc).__name__}: {exc}")
                summary.failed += 1
            else:
                notes[item] = list(group.notes)
                summary.warnings.extend(f"{item}: {note}" for note in group.notes)
                group.notes.clear()
                store.put_scores(*key, identity=identity, values=values)
                store.clear_failure("score", item)
                summary.computed += 1
        if progress:
            progress(done, len(work))
    store.set_meta("score_notes", {k: v for k, v in sorted(notes.items()) if v})
    return summary


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
        base_shas=[None] * len(images),
        plain_base_shas=[None] * len(images),
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
                value = metric.compute(group)[SET_ITEM]
            except (ValueError, np.linalg.LinAlgError):
                value = None
            out.append((metric.name, name, value))
    return out
