"""Reading and validating uploaded files before anything is stored or queued."""

from __future__ import annotations

import hashlib

from werkzeug.datastructures import FileStorage

from core.images import InvalidImageError, inspect_image
from services.images import MAX_FILENAME, UploadedFile

# HTTP status for a request whose only file was refused, by InvalidImageError code.
STATUS_BY_CODE = {
    "too_large": 413,
    "not_an_image": 415,
    "unsupported_format": 415,
}


def status_code(upload: UploadedFile) -> int:
    return STATUS_BY_CODE.get(upload.error.code, 422) if upload.error else 200


def read_upload(file: FileStorage, *, max_bytes: int, max_pixels: int) -> UploadedFile:
    # Never more than the limit plus one byte: that one byte tells us the file is too large.
    data = file.stream.read(max_bytes + 1)
    name = (file.filename or "upload")[:MAX_FILENAME]
    if len(data) > max_bytes:
        error = InvalidImageError(
            "too_large", f"the file is larger than the limit of {max_bytes:,} bytes"
        )
        return UploadedFile(name, b"", "", error=error)
    digest = hashlib.sha256(data).hexdigest()
    try:
        info = inspect_image(data, max_pixels=max_pixels)
    except InvalidImageError as exc:
        return UploadedFile(name, b"", digest, error=exc)
    return UploadedFile(name, data, digest, info=info)
