"""Every image mode Pillow opens becomes correct 8-bit RGB (t2i_bench/images.py).

Expected pixels are written by hand; the 16-bit PNGs are encoded here byte by byte (not by
Pillow), so the decoder is checked against an independent file."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2i_bench import images
from t2i_bench.errors import BenchError
from t2i_bench.images import BACKGROUND, open_rgb, rgb_from_bytes, to_rgb

WHITE = BACKGROUND


def _png(pixels: np.ndarray, color_type: int, depth: int, size: tuple[int, int] | None = None):
    """A PNG file written by hand: IHDR, one zlib IDAT of unfiltered rows, IEND."""
    height, width = pixels.shape[:2] if size is None else size[::-1]
    dtype = ">u2" if depth == 16 else "u1"
    rows = b"".join(b"\x00" + pixels[y].astype(dtype).tobytes() for y in range(pixels.shape[0]))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _pixels(image: Image.Image) -> list:
    assert image.mode == "RGB"
    return np.asarray(image).reshape(-1, 3).tolist()


def _gray(*values: int) -> list:
    return [[v, v, v] for v in values]


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 128, 1000, 32896, 65535]], np.uint16)
    path = tmp_path / "g16.png"
    path.write_bytes(_png(values, color_type=0, depth=16))
    # x * 255 / 65535 rounded: 128 -> 0.498 -> 0, 1000 -> 3.89 -> 4, 32896 -> 128
    assert _pixels(open_rgb(path)) == _gray(0, 0, 4, 128, 255)


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I;16N"])
def test_sixteen_bit_byte_orders(mode: str) -> None:
    values = np.array([0, 257, 32896, 65535], np.uint16)
    order = ">u2" if mode == "I;16B" else "<u2" if mode != "I;16N" else "=u2"
    image = Image.frombytes(mode, (4, 1), values.astype(order).tobytes())
    assert _pixels(to_rgb(image)) == _gray(0, 1, 128, 255)


def test_sixteen_bit_tiff(tmp_path: Path) -> None:
    path = tmp_path / "g16.tiff"
    Image.fromarray(np.array([[0, 65535, 257 * 64]], np.uint16)).save(path)
    assert _pixels(open_rgb(path)) == _gray(0, 255, 64)


def test_sixteen_bit_colour_and_alpha_pngs(tmp_path: Path) -> None:
    gray = np.array([[0, 32896, 65535]], np.uint16)
    opaque = np.full_like(gray, 65535)
    clear = np.zeros_like(gray)
    rgb = tmp_path / "rgb16.png"
    rgb.write_bytes(_png(np.stack([gray, clear, opaque], -1), color_type=2, depth=16))
    assert _pixels(open_rgb(rgb)) == [[0, 0, 255], [128, 0, 255], [255, 0, 255]]
    gray_alpha = tmp_path / "la16.png"
    gray_alpha.write_bytes(_png(np.stack([gray, clear], -1), color_type=4, depth=16))
    assert _pixels(open_rgb(gray_alpha)) == [list(WHITE)] * 3  # fully transparent


def test_mode_i_is_sixteen_bit_and_out_of_range_is_refused() -> None:
    image = Image.fromarray(np.array([[0, 65535, 257 * 200]], np.int32))
    assert image.mode == "I"
    assert _pixels(to_rgb(image)) == _gray(0, 255, 200)
    with pytest.raises(images.ImageModeError, match="outside the 16-bit range"):
        to_rgb(Image.fromarray(np.array([[-1, 70000]], np.int32)))


def test_float_images() -> None:
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0, 0.25]], np.float32))
    assert image.mode == "F"
    assert _pixels(to_rgb(image)) == _gray(0, 128, 255, 64)
    with pytest.raises(images.ImageModeError, match="outside 0..1"):
        to_rgb(Image.fromarray(np.array([[0.0, 2.0]], np.float32)))
    with pytest.raises(images.ImageModeError, match="NaN"):
        to_rgb(Image.fromarray(np.array([[0.0, np.nan]], np.float32)))


def test_one_bit_and_grayscale(tmp_path: Path) -> None:
    bits = Image.new("1", (3, 1))
    bits.putpixel((1, 0), 1)
    path = tmp_path / "bits.png"
    bits.save(path)
    assert Image.open(path).mode == "1"
    assert _pixels(open_rgb(path)) == _gray(0, 255, 0)
    gray = Image.fromarray(np.array([[7, 130, 255]], np.uint8))
    assert _pixels(to_rgb(gray)) == _gray(7, 130, 255)


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.fromarray(
        np.array([[[255, 0, 0, 0], [255, 0, 0, 255], [0, 0, 0, 128]]], np.uint8), "RGBA"
    )
    path = tmp_path / "rgba.png"
    rgba.save(path)
    pixels = _pixels(open_rgb(path))
    assert pixels[:2] == [[255, 255, 255], [255, 0, 0]]
    # black at alpha 128/255 over white: 255 * 127/255 = 127
    assert np.abs(np.array(pixels[2]) - 127).max() <= 1
    la = Image.fromarray(np.array([[[100, 0], [100, 255]]], np.uint8), "LA")
    assert _pixels(to_rgb(la)) == [[255, 255, 255], [100, 100, 100]]


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = [10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6)
    image = Image.new("P", (2, 1))
    image.putpalette(palette)
    image.putpixel((1, 0), 1)
    plain = tmp_path / "p.png"
    image.save(plain)
    assert _pixels(open_rgb(plain)) == [[10, 20, 30], [200, 100, 50]]
    indexed = tmp_path / "p_trns.png"
    image.save(indexed, transparency=0)  # tRNS: palette entry 0 is transparent
    assert Image.open(indexed).mode == "P"
    assert _pixels(open_rgb(indexed)) == [list(WHITE), [200, 100, 50]]
    gray_key = Image.fromarray(np.array([[0, 200]], np.uint8))
    keyed = tmp_path / "l_trns.png"
    gray_key.save(keyed, transparency=0)  # a transparent grey level
    assert _pixels(open_rgb(keyed)) == [list(WHITE), [200, 200, 200]]


def test_cmyk_and_ycbcr(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (4, 1))
    for x, value in enumerate([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255), (0, 255, 255, 0)]):
        cmyk.putpixel((x, 0), value)
    path = tmp_path / "cmyk.tiff"
    cmyk.save(path)
    assert Image.open(path).mode == "CMYK"
    # white, cyan, black, red
    assert _pixels(open_rgb(path)) == [[255, 255, 255], [0, 255, 255], [0, 0, 0], [255, 0, 0]]
    # JFIF: R = Y + 1.402 (Cr-128), G = Y - .344 (Cb-128) - .714 (Cr-128), B = Y + 1.772 (Cb-128)
    ycc = Image.new("YCbCr", (2, 1))
    ycc.putpixel((0, 0), (128, 128, 128))
    ycc.putpixel((1, 0), (76, 85, 255))
    got = np.array(_pixels(to_rgb(ycc)))
    assert np.abs(got - np.array([[128, 128, 128], [254, 0, 0]])).max() <= 1


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (1, [[1, 2, 3], [4, 5, 6]]),
        (2, [[3, 2, 1], [6, 5, 4]]),  # mirrored
        (3, [[6, 5, 4], [3, 2, 1]]),  # turned 180°
        (6, [[4, 1], [5, 2], [6, 3]]),  # shown turned 90° clockwise
        (8, [[3, 6], [2, 5], [1, 4]]),  # shown turned 90° counter-clockwise
    ],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, expected) -> None:
    stored = np.array([[1, 2, 3], [4, 5, 6]], np.uint8) * 40
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(stored).save(path, exif=exif)
    got = np.asarray(open_rgb(path))[..., 0]
    assert got.tolist() == (np.array(expected) * 40).tolist()


def test_oversized_image_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_png(np.zeros((1, 1), np.uint8), 0, 8, size=(12_000, 10_000)))
    with pytest.raises(BenchError) as info:
        open_rgb(path, "reference image")
    message = str(info.value)
    assert message.startswith(f"{path}: reference image is 12000x10000 = 120,000,000 pixels")
    assert f"over the limit of {images.MAX_PIXELS:,} pixels" in message
    assert "\n" not in message
    bomb = tmp_path / "bomb.png"  # past twice the limit Pillow itself refuses to open it
    bomb.write_bytes(_png(np.zeros((1, 1), np.uint8), 0, 8, size=(100_000, 100_000)))
    with pytest.raises(BenchError, match="too large|over the limit"):
        open_rgb(bomb)


def test_fifo_and_folder_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(BenchError, match=r"pipe.png: a FIFO \(named pipe\), not an image file"):
        open_rgb(fifo)
    assert time.monotonic() - start < 5
    folder = tmp_path / "dir.png"
    folder.mkdir()
    with pytest.raises(BenchError, match="dir.png: a folder, not a reference image file"):
        open_rgb(folder, "reference image")


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    good = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(good, format="PNG")
    truncated = tmp_path / "t.png"
    truncated.write_bytes(good.getvalue()[:60])
    with pytest.raises(BenchError, match=r"t.png: unreadable image \("):
        open_rgb(truncated)
    junk = tmp_path / "j.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(BenchError, match=r"j.png: unreadable image \(cannot identify"):
        open_rgb(junk)
    assert _pixels(rgb_from_bytes(good.getvalue()))[0] == [1, 2, 3]


def test_every_decoder_of_the_project_uses_these_rules(tmp_path: Path) -> None:
    """Concept checks, the embed stage, the store and the Ray decoder read a 16-bit PNG the
    same way (it used to be read as pure white by ``convert("RGB")``)."""
    from t2i_bench.executors import _decode
    from t2i_bench.metrics.embed import _load_rgb
    from t2i_bench.store import RunStore

    values = np.array([[0, 32896, 65535]], np.uint16)
    data = _png(values, color_type=0, depth=16)
    path = tmp_path / "g16.png"
    path.write_bytes(data)
    store = RunStore(tmp_path / "run")
    store.image_path("ab12").parent.mkdir(parents=True)
    store.image_path("ab12").write_bytes(data)
    expected = _gray(0, 128, 255)
    for image in (_load_rgb(path), _decode(data), store.load_image("ab12")):
        assert _pixels(image) == expected
    store.close()
