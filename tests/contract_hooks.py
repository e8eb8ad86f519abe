"""The contract run's generation hooks (tests/test_contract.py loads them with
``SCHEMATHESIS_HOOKS``): what a JSON Schema cannot say, and what would end the run.

- The document says a part is an image, or a body an archive, by its media type; these
  strategies make real files of each type, so that a request the document calls valid is one
  (an image the API can read, at least 12 px a side; an archive of such images), and the run
  tests what the API does with it, not only that it refuses bytes that are no image.
- The run never revokes its own key (``FACESEARCH_KEY``): every later request would be a 401.
- A form field made null is not sent (see :func:`filter_case`).
- Any other file part (``format: binary``: the images of ``POST /v1/images``, an array of
  files that schemathesis 4 cannot pair with media types) is an image too.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile
from typing import Any

import schemathesis
from hypothesis import strategies as st
from PIL import Image

# Pillow's format name for each media type the API takes (core.images.CONTENT_TYPES).
IMAGE_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}
SIDES = st.integers(min_value=12, max_value=48)  # core.images.MIN_SIDE and a little more
COLOURS = st.tuples(*[st.integers(min_value=0, max_value=255)] * 3)


def _image(image_format: str, width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format=image_format)
    return buffer.getvalue()


def images(image_format: str) -> st.SearchStrategy[bytes]:
    return st.builds(_image, st.just(image_format), SIDES, SIDES, COLOURS)


# Members as LFW lays them out (Name/Name_0001.jpg): the folder is the label.
MEMBERS = st.lists(
    st.tuples(st.sampled_from(["Ada_Lovelace", "Alan_Turing"]), images("JPEG")),
    max_size=2,
)


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for number, (label, data) in enumerate(members, start=1):
            info = tarfile.TarInfo(f"{label}/{label}_{number:04d}.jpg")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number, (label, data) in enumerate(members, start=1):
            archive.writestr(f"{label}/{label}_{number:04d}.jpg", data)
    return buffer.getvalue()


TAR = MEMBERS.map(_tar)
ARCHIVES = {
    "application/x-tar": TAR,
    "application/gzip": TAR.map(gzip.compress),
    "application/x-gzip": TAR.map(gzip.compress),
    "application/x-bzip2": TAR.map(bz2.compress),
    "application/x-xz": TAR.map(lzma.compress),
    "application/zip": MEMBERS.map(_zip),
}


NO_KEY = "fsk_00000000"  # a prefix no key has (the odds are one in four billion)


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """Every case, of every phase, passes here just before it is sent."""
    own = os.environ.get("FACESEARCH_KEY", "")[: len(NO_KEY)].removeprefix("fsk_")
    if case.method.upper() == "DELETE" and case.operation.path == "/v1/keys/{prefix}":
        prefix = str((case.path_parameters or {}).get("prefix"))
        if own and own in prefix:
            case.path_parameters = {**(case.path_parameters or {}), "prefix": NO_KEY}


@schemathesis.hook
def filter_case(context: Any, case: schemathesis.Case) -> bool:
    """A form has no null: schemathesis sends a field it made null as the text `null`, which is
    valid text (a label named "null"), and then expects a refusal. Such a case is not sent."""
    body = case.body
    form = (case.media_type or "").startswith("multipart/")
    return not (form and isinstance(body, dict) and any(v is None for v in body.values()))


def register() -> None:
    for media_type, image_format in IMAGE_FORMATS.items():
        schemathesis.openapi.media_type(media_type, images(image_format))
    for media_type, strategy in ARCHIVES.items():
        schemathesis.openapi.media_type(media_type, strategy)
    schemathesis.openapi.format("binary", st.one_of(*[images(f) for f in IMAGE_FORMATS.values()]))
    # A raw body sent as plain bytes is read for what it is: any of the archives.
    schemathesis.openapi.media_type("application/octet-stream", st.one_of(*ARCHIVES.values()))


register()
