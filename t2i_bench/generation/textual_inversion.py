"""Textual-inversion embeddings onto a pipeline's text encoder(s), and off again.

An SD 1.x/2.x embedding binds one token in the text encoder; an SDXL embedding (``clip_l``
and ``clip_g``) binds the same token in both encoders, as A1111 and kohya load it. A
multi-vector embedding binds ``token``, ``token_1``, … (diffusers expands the prompt).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from t2i_bench.errors import BenchError
from t2i_bench.generation.formats import read_embedding, textual_inversion_token


def _encoders(pipe) -> list[tuple[str, object, object]]:
    pairs = [("clip_l", pipe.text_encoder, pipe.tokenizer)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs.append(("clip_g", pipe.text_encoder_2, pipe.tokenizer_2))
    return pairs


def apply_embedding(
    pipe, path: Path, token: str | None, allow_pickle: bool = False
) -> tuple[str, Callable[[], None]]:
    """Load the embedding in ``path``; returns the bound token and the undo function."""
    embedding = read_embedding(path, allow_pickle)
    token = textual_inversion_token(path, embedding, token)
    pairs = _encoders(pipe)
    if embedding.is_sdxl and len(pairs) == 1:
        raise BenchError("an SDXL embedding (clip_l + clip_g) needs an SDXL base model", path)
    if not embedding.is_sdxl and len(pairs) == 2:
        raise BenchError(
            "an embedding for one text encoder does not fit SDXL, which needs clip_l and clip_g",
            path,
        )
    undo: list[Callable[[], None]] = []

    def undo_all() -> None:
        while undo:
            undo.pop()()

    for key, encoder, tokenizer in pairs:
        vectors = embedding.vectors[key]
        width = encoder.get_input_embeddings().weight.shape[1]
        if vectors.shape[1] != width:
            undo_all()
            raise BenchError(
                f"embedding {key} has {vectors.shape[1]}-wide vectors; the text encoder's are "
                f"{width} wide (trained on another model family)",
                path,
            )
        tokens = [token] + [f"{token}_{i}" for i in range(1, vectors.shape[0])]
        try:
            pipe.load_textual_inversion(
                vectors.squeeze(0) if vectors.shape[0] == 1 else vectors,
                token=token,
                text_encoder=encoder,
                tokenizer=tokenizer,
            )
        except Exception as exc:
            undo_all()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise BenchError(f"embedding does not fit the text encoder: {first}", path) from None
        undo.append(
            lambda t=tokens, e=encoder, k=tokenizer: pipe.unload_textual_inversion(
                t, tokenizer=k, text_encoder=e
            )
        )
    return token, undo_all
