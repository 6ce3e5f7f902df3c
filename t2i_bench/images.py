"""Decode any image file Pillow opens into the 8-bit RGB that every backbone expects.

Rules (docs/reliability.md lists them with their tests):

- EXIF orientation is applied (the image is turned the way viewers show it).
- Alpha (RGBA, LA, PA, P or L/RGB with a transparent colour) is composited on
  :data:`BACKGROUND` (white), never dropped: dropping it shows whatever colour the
  transparent pixels happen to hold.
- 16-bit grayscale (``I;16`` and its byte orders) and ``I`` are scaled from 0..65535 to
  0..255 with rounding, never clipped; an ``I`` image with values outside 0..65535 is refused.
- ``F`` (32-bit float) is read as 0..1 and scaled; values outside 0..1 or not finite are
  refused, because no scale can be assumed for them.
- Every other mode (1, L, P, CMYK, YCbCr, HSV, LAB, RGBX, RGBa…) goes through Pillow's own
  conversion. Embedded ICC profiles are not applied, like the backbones' own preprocessing.
- Animated files give their first frame.
- Images over :data:`MAX_PIXELS` are refused before they are decoded.

Every problem is a one-line :class:`~t2i_bench.errors.BenchError` naming the file.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from t2i_bench.errors import BenchError
from t2i_bench.files import require_regular_file

#: Colour that transparent pixels are composited on.
BACKGROUND = (255, 255, 255)
#: Largest image decoded, in pixels: Pillow's decompression-bomb threshold (about 89.5 MP,
#: e.g. 9,459 x 9,459). Larger images are refused before decoding.
MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_SIXTEEN_BIT = 65535
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error)


def open_rgb(path: str | Path, what: str = "image") -> Image.Image:
    """The image at ``path`` as 8-bit RGB (rules in the module docstring); ``what`` names
    the file's role in messages."""
    path = Path(path)
    require_regular_file(path, what)
    return _decode(path, path, what)


def rgb_from_bytes(data: bytes, name: str = "image", what: str = "image") -> Image.Image:
    """An encoded image file's bytes as 8-bit RGB, like :func:`open_rgb`."""
    return _decode(io.BytesIO(data), name, what)


def _decode(source: Path | io.BytesIO, name: str | Path, what: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                check_size(image.size, name, what)
                image.load()
                return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise BenchError(f"{what} too large ({exc}); downscale it", name) from None
    except BenchError:
        raise
    except ImageModeError as exc:
        raise BenchError(f"{what}: {exc}", name) from None
    except _DECODE_ERRORS as exc:
        raise BenchError(f"unreadable {what} ({exc})", name) from None


def check_size(size: tuple[int, int], path: str | Path, what: str = "image") -> None:
    """Refuse images over :data:`MAX_PIXELS` (one line naming the file and the limit)."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise BenchError(
            f"{what} is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{MAX_PIXELS:,} pixels (Pillow's decompression-bomb threshold); downscale it",
            path,
        )


class ImageModeError(ValueError):
    """Pixel values that cannot be mapped to 8-bit RGB without guessing a scale."""


def to_rgb(image: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """An opened image of any mode as 8-bit RGB: orientation applied, alpha composited on
    ``background``, 16-bit and float scaled (see the module docstring)."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image.copy()
    if mode == "I" or mode.startswith("I;16"):
        return _gray_to_rgb(_scale_integer(image))
    if mode == "F":
        return _gray_to_rgb(_scale_float(image))
    if mode == "La":
        image = image.convert("LA")  # Pillow converts premultiplied L only to LA
        mode = "LA"
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def _scale_integer(image: Image.Image) -> np.ndarray:
    """0..65535 -> 0..255, rounded (x * 255 / 65535, half up)."""
    values = np.asarray(image).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > _SIXTEEN_BIT):
        raise ImageModeError(
            f"{image.mode} image with values {values.min()}..{values.max()}, outside the "
            "16-bit range 0..65535; save it as an 8- or 16-bit image"
        )
    return ((values * 255 + _SIXTEEN_BIT // 2) // _SIXTEEN_BIT).astype(np.uint8)


def _scale_float(image: Image.Image) -> np.ndarray:
    """0.0..1.0 -> 0..255, rounded; anything else is refused."""
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ImageModeError("float image with NaN or infinite pixel values")
    if values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise ImageModeError(
            f"float image with values {values.min():g}..{values.max():g}, outside 0..1; "
            "save it as an 8- or 16-bit image"
        )
    return np.floor(values * 255.0 + 0.5).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), "RGB")
