"""Trigger removal for CLIP-T works for any trigger string: a property over a generated table
(seeded, 3,000 cases: regex metacharacters, brackets, unicode, emoji, multi-word triggers),
plus hand-written cases for word boundaries."""

from __future__ import annotations

import random
import string

import pytest

from t2i_bench.concepts import Concept, remove_trigger

NOTABLE = [
    "<tok>", "[V]", "sks", "olis", "ohwx man", "c++", "(x)", "$^.*", "\\d+", "a.b", "-x-",
    "<lora:x:1>", "{z}", "ü", "日本語", "🙂", "zyx|abc", "?", "**", "o'neil", "  spaced  ",
]  # fmt: skip
ALPHABET = (
    string.ascii_letters + string.digits + "<>[](){}.*+?^$|\\-_:'\"/!#%&=~`@,;"
    + "éüßøçñ日本語中文Ωπ🙂🔥"
)  # fmt: skip
LEFT = [" ", " (", ' "', " '", " [", "\n"]
RIGHT = [" ", ", ", ") ", ". ", "! ", '" ', "\t"]
WHITESPACE = [" ", "  ", "\t", "\n "]


def _normal(text: str) -> str:
    return " ".join(text.split())


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 8)))


def _trigger(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(NOTABLE)
    words = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6))) for _ in range(3)]
    return " ".join(words[: rng.choice([1, 1, 1, 2, 3])])


def _cased(text: str, rng: random.Random) -> str:
    """Swap the case of some ASCII letters (CLIP's tokenizer lowercases)."""
    return "".join(c.swapcase() if c in string.ascii_letters and rng.random() < 0.5 else c
                   for c in text)  # fmt: skip


def _cases(count: int = 3000, seed: int = 0):
    rng = random.Random(seed)
    made = 0
    while made < count:
        trigger = _trigger(rng)
        class_word = rng.choice(["", "", "toy", "man", "stuffed toy"])
        prefix = " ".join(_word(rng) for _ in range(rng.randint(0, 4)))
        suffix = " ".join(_word(rng) for _ in range(rng.randint(0, 4)))
        left, right = rng.choice(LEFT), rng.choice(RIGHT)
        words = f"{trigger} {class_word}".split()
        descriptor = rng.choice(WHITESPACE).join(_cased(w, rng) for w in words)
        rest = f"{prefix}{left}{right}{suffix}".casefold()
        key = trigger.strip().casefold()
        if not key or key in rest or key in class_word.casefold():
            continue  # the property needs the trigger to occur only where it is inserted
        made += 1
        yield trigger, class_word, prefix, left, descriptor, right, suffix


TABLE = list(_cases())


def test_the_generated_table_covers_hard_triggers() -> None:
    triggers = {case[0] for case in TABLE}
    assert len(TABLE) == 3000 and len(triggers) > 1500
    assert {"<tok>", "[V]", "sks", "ohwx man", "$^.*", "🙂"} <= triggers
    assert sum(any(c in t for c in "<[(\\.*+?^$|") for t in triggers) > 800
    assert sum(" " in t.strip() for t in triggers) > 300


@pytest.mark.parametrize("rule", ["drop", "class", "keep"])
def test_any_trigger_is_removed(rule: str) -> None:
    failures = []
    for trigger, class_word, prefix, left, descriptor, right, suffix in TABLE:
        prompt = f"{prefix}{left}{descriptor}{right}{suffix}"
        fill = {"drop": "", "class": class_word, "keep": descriptor}[rule]
        expected = prompt if rule == "keep" else _normal(f"{prefix}{left}{fill}{right}{suffix}")
        got = remove_trigger(prompt, trigger, class_word, rule)
        if got != expected:
            failures.append((trigger, class_word, prompt, got, expected))
    assert not failures, f"{len(failures)} failures, e.g. {failures[:3]}"


@pytest.mark.parametrize(
    ("trigger", "class_word", "prompt", "expected"),
    [
        ("sks", "dog", "a photosks dog", "a photosks dog"),  # glued to a word: not the trigger
        ("sks", "dog", "a sks's toy", "a dog's toy"),
        ("olis", "toy", "Olis toy on a table", "toy on a table"),
        ("olis", "toy", "olis toy next to another OLIS", "toy next to another toy"),
        ("<olis>", "toy", "a photo of <olis>, in the snow", "a photo of toy, in the snow"),
        ("<tok>", "", "a<tok> b", "a b"),  # '<' and '>' are no word characters
        ("[V]", "dog", "a [V] dog swimming", "a dog swimming"),
        ("ohwx man", "", "portrait of ohwx   man", "portrait of"),
        ("a.b", "", "acb and a.b", "acb and"),  # '.' is literal, not any character
        ("x", "\\1 \\g<0>", "a x b", "a \\1 \\g<0> b"),  # a class word is never a template
    ],
)
def test_word_boundaries_and_literals(trigger, class_word, prompt, expected) -> None:
    rule = "class" if class_word else "drop"
    assert remove_trigger(prompt, trigger, class_word, rule) == expected


def test_concept_uses_its_rule() -> None:
    concept = Concept("c", "<olis>", "toy", "object", (), (), clip_t_rule="drop")
    assert concept.text_for_clip_t("<olis> toy in a chef's outfit") == "in a chef's outfit"
