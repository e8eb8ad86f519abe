"""Image validation and decoding with Pillow (no TensorFlow: the API uses this too).

Everything a hostile upload can do to a decoder is turned into ``InvalidImageError`` with a
code and a message a person can act on.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats we accept, by Pillow's name, with the content type we store and serve.
# MPO is what Pillow calls the multi-picture JPEGs that many phones write.
CONTENT_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}
SUPPORTED = "JPEG, PNG, WebP, BMP, GIF, TIFF"
# Smaller than this cannot hold a face MTCNN can find (its smallest window is 12 px).
MIN_SIDE = 12


class InvalidImageError(ValueError):
    """The bytes are not an image we can process. ``code`` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    width: int  # after EXIF orientation is applied
    height: int


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise InvalidImageError("empty", "the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its own limit, raises) on pixel counts that suggest a
            # decompression bomb; both are a refusal here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (
        UnidentifiedImageError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise InvalidImageError(
                "not_an_image", f"the file is not an image in a supported format ({SUPPORTED})"
            ) from exc
        raise InvalidImageError(
            "too_many_pixels", f"the image is too large to decode ({exc})"
        ) from exc
    except Exception as exc:
        # A decoder boundary: Pillow's format plugins meet hostile bytes with OSError,
        # SyntaxError, struct.error, EOFError, IndexError... Any of them means "corrupt".
        raise InvalidImageError(
            "corrupt", f"the image header is truncated or corrupt ({exc})"
        ) from exc
    if image.format not in CONTENT_TYPES:
        raise InvalidImageError(
            "unsupported_format",
            f"{image.format} images are not supported; use one of {SUPPORTED}",
        )
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImageError(
            "too_many_pixels",
            f"the image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,}",
        )
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            "too_small", f"the image is {width}x{height}; each side must be at least {MIN_SIDE} px"
        )
    return image


def _load(image: Image.Image) -> Image.Image:
    try:
        image.load()  # the full decode: finds truncated and corrupt data
        # In place: otherwise an upright image (nearly all) is copied whole for nothing.
        ImageOps.exif_transpose(image, in_place=True)
        return image
    except Exception as exc:
        # Truncation and corruption surface as OSError, SyntaxError, ValueError, EOFError,
        # struct.error and others, depending on the format plugin; all are a refusal.
        raise InvalidImageError(
            "corrupt", f"the image data is truncated or corrupt ({exc})"
        ) from exc


# EXIF orientations that turn the picture a quarter: its width and height swap.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def inspect_image(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Validate by decoding, as cheaply as finds what a full decode would; return format
    and oriented size.

    A JPEG is decoded at 1/8 scale (libjpeg's DCT scaling, Pillow's ``draft``): every scan's
    entropy-coded data is still read, so truncation and corruption are found as by a full
    decode, at about a third of its cost (0.4 vs 1.1 ms an LFW image). The pixels are thrown
    away: whoever needs them (the worker) decodes once, fully (``decode_rgb``). Other formats
    are decoded fully: they are rare, and have no such shortcut."""
    image = _open(data, max_pixels)
    fmt = str(image.format)
    width, height = image.size
    try:
        if fmt in ("JPEG", "MPO"):
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
        image.load()
        orientation = image.getexif().get(0x0112)  # ExifTags.Base.Orientation
    except Exception as exc:
        # As in _load: any decoder error on hostile bytes is a refusal.
        raise InvalidImageError(
            "corrupt", f"the image data is truncated or corrupt ({exc})"
        ) from exc
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return ImageInfo(format=fmt, content_type=CONTENT_TYPES[fmt], width=width, height=height)


def decode_rgb(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Decode to an HxWx3 RGB uint8 array, EXIF orientation applied, alpha on white."""
    image = _load(_open(data, max_pixels))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    elif image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float images: scale to 8 bits rather than clip everything to white.
        array = np.asarray(image, dtype=np.float64)
        span = float(array.max() - array.min()) or 1.0
        image = Image.fromarray(((array - array.min()) * (255.0 / span)).astype(np.uint8))
    if image.mode != "RGB":  # convert() copies even an RGB image
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)
