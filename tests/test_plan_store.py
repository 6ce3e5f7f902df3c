"""Plan keys (stable, distinct) and the run store (resume, integrity, embeddings, scores)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from conftest import write_config
from PIL import Image

from t2i_bench.checkpoints import Checkpoint
from t2i_bench.concepts import load_concept
from t2i_bench.config import load_config
from t2i_bench.plan import make_plan
from t2i_bench.prompts import load_prompt_set
from t2i_bench.store import RunStore

KEY = "c025c2f2f55c2f68dbd1a426c6874b64"  # with 2 CPU threads (tests/conftest.py)


def _plan(concept_dir: Path, extra: str = "", checkpoints=None):
    config = load_config(write_config(concept_dir, extra))
    concepts = [load_concept(p) for p in config.concepts]
    ckpts = checkpoints or [Checkpoint("base", None, file_hash="base")]
    return make_plan(config, ckpts, concepts, load_prompt_set(config.prompts.set), "tiny:seed=0")


def test_keys_are_stable_and_distinct(concept_dir: Path) -> None:
    first, second = _plan(concept_dir), _plan(concept_dir)
    assert [j.key for j in first.jobs] == [j.key for j in second.jobs]
    # 5 prompt types x 1 prompt x 2 seeds, every image distinct; the first key is pinned so
    # that any change to what enters a key is deliberate (it invalidates every cached image)
    assert len(first.jobs) == 10 and len(first.image_keys) == 10
    # (changed in store version 2: the device type, CPU thread count and render batch size
    # entered the key; the prompt set's name and version left it: the prompt text itself
    # determines pixels)
    assert first.jobs[0].key == KEY


def test_keys_change_with_everything_that_changes_pixels(concept_dir: Path) -> None:
    base = {j.key for j in _plan(concept_dir).jobs}
    assert base.isdisjoint(j.key for j in _plan(concept_dir, "seed: 7\n").jobs)
    assert base.isdisjoint(j.key for j in _plan(concept_dir, "dtype: bfloat16\n").jobs)
    assert base.isdisjoint(j.key for j in _plan(concept_dir, "device: meta\n").jobs)
    assert base.isdisjoint(j.key for j in _plan(concept_dir, "threads: 3\n").jobs)
    steps = _plan(concept_dir, "sampler: {steps: 4, width: 64, height: 64}\n")
    assert base.isdisjoint(j.key for j in steps.jobs)


def test_keys_carry_the_size_of_their_render_batch(concept_dir: Path) -> None:
    """Batched kernels round differently at another batch size, so an image's key names the
    size of its render batch: with batch size 4, 10 jobs give batches of 4, 4 and 2."""
    sampler = "sampler: {steps: 3, guidance_scale: 3.0, width: 64, height: 64, batch_size: %d}\n"
    four = _plan(concept_dir, sampler % 4)
    assert [len(b.jobs) for b in four.batches] == [4, 4, 2]
    ten = _plan(concept_dir, sampler % 10)
    assert {j.key for j in four.jobs}.isdisjoint(j.key for j in ten.jobs)
    # two more prompts: the full batches keep their keys, only the last batch changes
    more = _plan(concept_dir, sampler % 4 + "images_per_prompt: 3\n")
    kept = {j.key for b in four.batches[:2] for j in b.jobs}
    full = [b for b in more.batches if len(b.jobs) == 4]
    assert kept & {j.key for b in full for j in b.jobs}


def test_checkpoint_identity_and_multiplier_enter_the_key(concept_dir: Path) -> None:
    a = Checkpoint("a", Path("a.safetensors"), 1.0, file_hash="aaa")
    b = dataclasses.replace(a, name="b", multiplier=0.5)
    plan = _plan(concept_dir, checkpoints=[Checkpoint("base", None, file_hash="base"), a, b])
    by_ckpt: dict[str, set[str]] = {}
    for job in plan.jobs:
        by_ckpt.setdefault(job.checkpoint, set()).add(job.key)
    assert len(by_ckpt) == 3
    assert not (by_ckpt["a"] & by_ckpt["b"]) and not (by_ckpt["a"] & by_ckpt["base"])
    assert all(batch.checkpoint in by_ckpt for batch in plan.batches)


def test_store_resume_and_integrity(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    image = Image.fromarray(np.full((8, 8, 3), 7, np.uint8))
    sha = store.put_image("abcd", image)
    store.close()
    reopened = RunStore(tmp_path / "run")
    assert reopened.existing_images() == {"abcd"}
    assert reopened.image_rows()["abcd"][1] == sha
    assert reopened.verify_images() == []
    assert np.array_equal(np.asarray(reopened.load_image("abcd")), np.asarray(image))
    reopened.image_path("abcd").write_bytes(b"truncated")
    assert reopened.verify_images() == ["abcd"]
    assert reopened.existing_images() == set()
    assert not list((tmp_path / "run" / "images").rglob("*.tmp"))


def test_store_embeddings_and_scores(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    vectors = {"s1": np.arange(4, dtype=np.float32), "s2": -np.arange(4, dtype=np.float32)}
    store.put_embeddings("bb", vectors)
    got = store.get_embeddings("bb", ["s2", "s1"])
    assert np.array_equal(got, np.stack([vectors["s2"], vectors["s1"]]))
    assert store.embedded("bb") == {"s1", "s2"} and store.embedded("other") == set()
    store.put_scores("m", "c", "k", "p", identity="id1", values={"x": 1.0, "y": float("nan")})
    store.put_scores("m", "c", "k", "p", identity="id2", values={"x": 2.0})
    rows = store.conn.execute("SELECT item, value, identity FROM scores").fetchall()
    assert rows == [("x", 2.0, "id2")]
    assert store.score_identities() == {("m", "c", "k", "p"): "id2"}
