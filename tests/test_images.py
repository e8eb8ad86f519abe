"""core.images: validation and decoding of hostile and unusual files (synthetic images)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.images import InvalidImageError, decode_rgb, inspect_image

LIMIT = 40_000_000


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def rgb(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("GIF", "image/gif"),
        ("TIFF", "image/tiff"),
    ],
)
def test_supported_formats_are_accepted(fmt: str, content_type: str) -> None:
    info = inspect_image(encode(rgb(), fmt), max_pixels=LIMIT)
    assert (info.format, info.content_type, info.width, info.height) == (fmt, content_type, 64, 48)


def refusal(data: bytes, max_pixels: int = LIMIT) -> InvalidImageError:
    with pytest.raises(InvalidImageError) as caught:
        inspect_image(data, max_pixels=max_pixels)
    return caught.value


def test_empty_file() -> None:
    assert refusal(b"").code == "empty"


def test_text_file_is_not_an_image() -> None:
    error = refusal(b"hello, this is not a picture\n" * 10)
    assert error.code == "not_an_image"
    assert "JPEG" in error.message  # tells the client what would have worked


def test_truncated_jpeg_is_corrupt() -> None:
    data = encode(rgb(256, 256), "JPEG", quality=95)
    assert refusal(data[: len(data) // 2]).code == "corrupt"


def test_unsupported_format_names_the_format() -> None:
    error = refusal(encode(rgb(), "ICO"))
    assert error.code == "unsupported_format"
    assert "ICO" in error.message


def test_too_many_pixels_is_refused_before_decoding() -> None:
    # A 4,000 x 3,000 blank PNG compresses to a few KB: the shape of a decompression bomb.
    data = encode(Image.new("L", (4000, 3000)), "PNG")
    assert len(data) < 100_000
    error = refusal(data, max_pixels=1_000_000)
    assert error.code == "too_many_pixels"
    assert "12,000,000" in error.message


def test_pillow_bomb_guard_is_a_refusal_not_a_warning() -> None:
    # Past Pillow's own limit, it warns or raises; either must become a clean refusal.
    data = encode(Image.new("1", (10_000, 10_000)), "PNG")
    assert refusal(data, max_pixels=10**12).code == "too_many_pixels"


def test_tiny_image_is_refused() -> None:
    assert refusal(encode(rgb(5, 5), "PNG")).code == "too_small"


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "I;16", "CMYK", "1"])
def test_every_mode_decodes_to_rgb_uint8(mode: str) -> None:
    image = rgb().convert(mode)
    fmt = "TIFF" if mode in ("I;16", "CMYK") else "PNG"
    array = decode_rgb(encode(image, fmt), max_pixels=LIMIT)
    assert array.shape == (48, 64, 3)
    assert array.dtype == np.uint8


def test_transparent_pixels_become_white_not_black() -> None:
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    array = decode_rgb(encode(image, "PNG"), max_pixels=LIMIT)
    assert array.min() == 255


def test_sixteen_bit_images_keep_their_contrast() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (32, 1))
    array = decode_rgb(encode(Image.fromarray(ramp), "TIFF"), max_pixels=LIMIT)
    assert array[..., 0].min() == 0
    assert array[..., 0].max() == 255


def test_exif_orientation_is_applied() -> None:
    image = rgb(64, 32)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the displayed image is 32 wide, 64 tall
    data = encode(image, "JPEG", exif=exif.tobytes())
    assert inspect_image(data, max_pixels=LIMIT).width == 32
    assert decode_rgb(data, max_pixels=LIMIT).shape == (64, 32, 3)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_truncation_is_a_clean_refusal(fmt: str) -> None:
    # Hostile uploads: cut each format at many points, and flip bytes in its header. Each
    # must decode or raise InvalidImageError, never another exception (a 500 in the API).
    data = encode(rgb(96, 64), fmt)
    cuts = sorted({*range(1, min(len(data), 200)), *range(200, len(data), max(len(data) // 50, 1))})
    variants = [data[:cut] for cut in cuts]
    variants += [data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :] for i in range(0, 64, 3)]
    codes = set()
    for variant in variants:
        try:
            decode_rgb(variant, max_pixels=LIMIT)
        except InvalidImageError as error:  # anything else fails the test
            codes.add(error.code)
    assert codes <= {"empty", "not_an_image", "corrupt", "too_small", "too_many_pixels"}
    assert "corrupt" in codes
