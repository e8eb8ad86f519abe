"""Reading the LFW archive (``<root>/<Name>/<Name>_<NNNN>.jpg``) as a stream."""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MEMBER = re.compile(r"(?:^|/)(?P<label>[^/]+)/(?P=label)_(?P<number>\d{4})\.jpg$")


def default_archive() -> Path:
    """``LFW_ARCHIVE``, else the shared copy beside the project."""
    configured = os.environ.get("LFW_ARCHIVE")
    if configured:
        return Path(configured)
    return PROJECT_ROOT.parent / "shared" / "lfw" / "lfw-deepfunneled.tgz"


@dataclass(frozen=True)
class LfwImage:
    label: str
    name: str  # e.g. Albert_Costa_0001.jpg
    data: bytes


def iter_images(archive: Path) -> Iterator[LfwImage]:
    """Every image in archive order, read as a stream (the archive is never held whole)."""
    with tarfile.open(archive, mode="r|*") as tar:
        for member in tar:
            match = MEMBER.search(member.name)
            if not member.isfile() or match is None:
                continue
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            yield LfwImage(match["label"], Path(member.name).name, extracted.read())


def by_identity(archive: Path, *, min_images: int, include: set[str]) -> dict[str, list[LfwImage]]:
    """Whole identities, in archive order, until at least ``min_images`` images are taken and
    every identity in ``include`` is there. Stops reading as soon as that is true."""
    chosen: dict[str, list[LfwImage]] = {}
    total = 0
    for image in iter_images(archive):
        enough = total >= min_images and include <= chosen.keys()
        if enough and image.label not in chosen:
            # Archive order keeps an identity's images together: once a new identity starts
            # after we have enough, we are done.
            break
        if total < min_images or image.label in include or image.label in chosen:
            chosen.setdefault(image.label, []).append(image)
            total += 1
    return chosen
