"""Reading tar and zip archives as a stream of members, defensively (no TensorFlow here).

Nothing is ever extracted to a path: each member's bytes are read into memory, at most
``max_member_bytes + 1`` of them, and handed to the caller. Members that are not plain files
(links, devices, FIFOs), that name a path outside the archive, or that are too large are
reported with a reason instead of being read. Tar is read in streaming mode (``r|*``: one
pass, gzip/bzip2/xz detected from the bytes); zip needs to seek, so a zip stream is first
spooled to a temporary file (memory up to ``SPOOL_MEMORY_BYTES``, then disk).
"""

from __future__ import annotations

import io
import re
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

# How many leading bytes tell the format apart (tar's "ustar" magic sits at offset 257).
SNIFF_BYTES = 512
SPOOL_MEMORY_BYTES = 64 * 1024 * 1024
COPY_CHUNK = 1024 * 1024

ARCHIVE_FORMATS = ("zip", "tar", "gzip", "bzip2", "xz")
# Where a member's label comes from: its folder (LFW: ``Name/Name_0001.jpg``), its file name
# without a trailing number (``Name_0001.jpg``), or nowhere.
LABEL_SOURCES = ("folder", "filename", "none")


class ArchiveError(ValueError):
    """The archive as a whole cannot be read (not an archive, truncated, corrupt)."""


def sniff_format(head: bytes) -> str | None:
    """The archive format of bytes starting with ``head``, or None when it is none we read."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a zip (or an empty one)
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head[257:262] == b"ustar":
        return "tar"
    return None


@dataclass(frozen=True)
class Member:
    """One archive entry that is not a folder: its bytes, or why they were not read."""

    index: int  # position among all the archive's entries (folders included): stable
    name: str
    data: bytes | None = None
    error: str | None = None


def unsafe_path_reason(name: str) -> str | None:
    """Why a member's path could escape a folder it were extracted to (it never is)."""
    if "\x00" in name:
        return "the member's name contains a NUL byte"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "the member has an absolute path"
    if ".." in re.split(r"[\\/]+", name):
        return "the member's path contains '..'"
    return None


class PrefixedStream(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: sniffing must not consume bytes."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def iter_members(
    stream: BinaryIO, *, max_member_bytes: int, skip_through: int = -1
) -> Iterator[Member]:
    """Every non-folder member of the tar or zip archive read from ``stream``, in order.

    Members whose index is ``skip_through`` or lower are passed over without being read (a
    resumed scan). Raises :class:`ArchiveError` when the archive itself is unreadable.
    """
    head = stream.read(SNIFF_BYTES)
    fmt = sniff_format(head)
    if fmt is None:
        raise ArchiveError("the file is not a tar, tar.gz/bz2/xz or zip archive")
    whole = io.BufferedReader(PrefixedStream(head, stream), buffer_size=COPY_CHUNK)
    if fmt == "zip":
        yield from _zip_members(whole, max_member_bytes, skip_through)
    else:
        yield from _tar_members(whole, max_member_bytes, skip_through)


def _too_large(size: int, limit: int) -> str:
    return f"the member is {size:,} bytes; the limit is {limit:,}"


def _tar_members(stream: BinaryIO, limit: int, skip_through: int) -> Iterator[Member]:
    index = -1
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for info in tar:
                index += 1
                # Streaming mode keeps every header it has seen: drop them, or a huge
                # archive's headers alone would fill memory.
                tar.members = []  # type: ignore[attr-defined]
                if index <= skip_through or info.isdir():
                    continue
                yield _tar_member(tar, info, index, limit)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        where = "at its start" if index < 0 else f"after entry {index}"
        raise ArchiveError(f"the archive is truncated or corrupt {where}: {exc}") from exc


def _tar_member(tar: tarfile.TarFile, info: tarfile.TarInfo, index: int, limit: int) -> Member:
    name = info.name
    reason = unsafe_path_reason(name)
    if reason is None:
        if info.issym() or info.islnk():
            reason = "the member is a link; links are never followed"
        elif info.ischr() or info.isblk() or info.isfifo():
            reason = "the member is a device or FIFO, not a file"
        elif not info.isfile():
            reason = "the member is not a regular file"
        elif info.size > limit:
            reason = _too_large(info.size, limit)
    if reason is not None:
        return Member(index, name, error=reason)
    extracted = tar.extractfile(info)
    if extracted is None:
        return Member(index, name, error="the member is not a regular file")
    return Member(index, name, data=extracted.read(limit + 1))


def _zip_members(stream: BinaryIO, limit: int, skip_through: int) -> Iterator[Member]:
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        while chunk := stream.read(COPY_CHUNK):
            spool.write(chunk)
        spool.seek(0)
        try:
            archive = zipfile.ZipFile(spool)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ArchiveError(f"the zip archive is truncated or corrupt: {exc}") from exc
        with archive:
            for index, info in enumerate(archive.infolist()):
                if index <= skip_through or info.is_dir():
                    continue
                yield _zip_member(archive, info, index, limit)


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, index: int, limit: int) -> Member:
    name = info.filename
    mode = info.external_attr >> 16  # Unix mode, when the zip was made on Unix
    reason = unsafe_path_reason(name)
    if reason is None:
        if stat.S_ISLNK(mode):
            reason = "the member is a link; links are never followed"
        elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            reason = "the member is a device, FIFO or other special file, not a file"
        elif info.flag_bits & 0x1:
            reason = "the member is encrypted"
        elif info.file_size > limit:
            reason = _too_large(info.file_size, limit)
    if reason is not None:
        return Member(index, name, error=reason)
    try:
        with archive.open(info) as member:
            # The header's size may lie: never inflate more than the limit plus one byte.
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        return Member(index, name, error=f"the member is corrupt: {exc}")
    return Member(index, name, data=data)
