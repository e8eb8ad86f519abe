"""Reading and validating uploaded files before anything is stored or queued."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from werkzeug.datastructures import FileStorage

from core.images import ImageInfo, InvalidImageError, inspect_image
from core.storage import ObjectStore, content_key

# HTTP status for a request whose only file was refused, by InvalidImageError code.
STATUS_BY_CODE = {
    "too_large": 413,
    "not_an_image": 415,
    "unsupported_format": 415,
}
MAX_FILENAME = 255


@dataclass(frozen=True)
class Upload:
    """An uploaded file: valid (``info`` set) or refused (``error`` set)."""

    filename: str
    data: bytes
    sha256: str
    info: ImageInfo | None = None
    error: InvalidImageError | None = None

    @property
    def status_code(self) -> int:
        return STATUS_BY_CODE.get(self.error.code, 422) if self.error else 200


def read_upload(file: FileStorage, *, max_bytes: int, max_pixels: int) -> Upload:
    # Never more than the limit plus one byte: that one byte tells us the file is too large.
    data = file.stream.read(max_bytes + 1)
    name = (file.filename or "upload")[:MAX_FILENAME]
    if len(data) > max_bytes:
        error = InvalidImageError(
            "too_large", f"the file is larger than the limit of {max_bytes:,} bytes"
        )
        return Upload(name, b"", "", error=error)
    digest = hashlib.sha256(data).hexdigest()
    try:
        info = inspect_image(data, max_pixels=max_pixels)
    except InvalidImageError as exc:
        return Upload(name, b"", digest, error=exc)
    return Upload(name, data, digest, info=info)


def store_upload(store: ObjectStore, upload: Upload) -> str:
    """Store the bytes under their content address (once), return the key."""
    assert upload.info is not None
    key = content_key(upload.sha256)
    if not store.exists(key):
        store.put(key, upload.data, content_type=upload.info.content_type)
    return key
