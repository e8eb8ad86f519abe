"""Reading tar and zip archives as a stream of members, defensively (no TensorFlow here).

Nothing is ever extracted to a path: each member's bytes are read into memory, at most
``max_member_bytes + 1`` of them, and handed to the caller. Members that are not plain files
(links, devices, FIFOs), that name a path outside the archive, whose name is not text (not
UTF-8, control characters) or that are too large are reported with a reason instead of being
read; a member's name is always handed over in a printable form (:func:`printable_name`).
Tar is read in streaming mode (``r|``: one pass; gzip/bzip2/xz, detected from the bytes, are
decompressed by bounded readers in front of it); zip needs to seek, so a zip stream is first
spooled to a temporary file (memory up to ``SPOOL_MEMORY_BYTES``, then disk).

What the archive's own structure could make us hold is bounded too: a tar entry's headers
(GNU long names, pax records, sparse maps) at most ``MAX_TAR_HEADER_BYTES`` together, a zip's
central directory at most ``max_zip_directory_bytes``, and at most ``max_members`` entries.
Past a bound the read stops with an :class:`ArchiveError`; what came before is kept.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import stat
import struct
import tarfile
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

# How many leading bytes tell the format apart (tar's "ustar" magic sits at offset 257).
SNIFF_BYTES = 512
SPOOL_MEMORY_BYTES = 64 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
# The most bytes one tar entry's headers may take together: its own 512-byte block plus any
# GNU long-name/long-link, pax and sparse-map blocks before its data. Real ones take a few
# KB (a 4,096-byte path is a long one); tarfile would read a header whole, whatever its size.
MAX_TAR_HEADER_BYTES = 64 * 1024
# Defaults of the settings MAX_ARCHIVE_MEMBERS and MAX_ZIP_DIRECTORY_BYTES.
DEFAULT_MAX_MEMBERS = 1_000_000
# zipfile holds a zip's whole central directory, at about 6x its size in Python objects.
DEFAULT_MAX_ZIP_DIRECTORY_BYTES = 64 * 1024 * 1024

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


def printable_name(name: str) -> str:
    """``name`` with what is not text escaped: undecodable bytes (lone surrogates, as tarfile's
    ``surrogateescape`` leaves them) and control characters become ``\\xNN``, so that the name
    can be stored, logged and shown (``Jos\\xe9/x.jpg`` for latin-1 ``José/x.jpg``)."""
    out = []
    for c in name:
        code = ord(c)
        if 0xDC80 <= code <= 0xDCFF:  # the byte surrogateescape could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(c) in ("Cc", "Cs"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(c)
    return "".join(out)


def name_reason(name: str) -> str | None:
    """Why a member's name is not usable text (its item fails; no label comes from it)."""
    if any("\udc80" <= c <= "\udcff" for c in name):
        return "the member's name is not valid UTF-8 (shown with \\x escapes)"
    if "\x00" in name:
        return "the member's name contains a NUL byte"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return "the member's name contains a control character (shown with \\x escapes)"
    return None


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
    stream: BinaryIO,
    *,
    max_member_bytes: int,
    skip_through: int = -1,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_zip_directory_bytes: int = DEFAULT_MAX_ZIP_DIRECTORY_BYTES,
) -> Iterator[Member]:
    """Every non-folder member of the tar or zip archive read from ``stream``, in order.

    Members whose index is ``skip_through`` or lower are passed over without being read (a
    resumed scan). Raises :class:`ArchiveError` when the archive itself is unreadable, has
    more than ``max_members`` entries (folders included; the first ``max_members`` are
    yielded before), or holds headers over the bounds above.
    """
    head = stream.read(SNIFF_BYTES)
    fmt = sniff_format(head)
    if fmt is None:
        raise ArchiveError("the file is not a tar, tar.gz/bz2/xz or zip archive")
    whole = io.BufferedReader(PrefixedStream(head, stream), buffer_size=COPY_CHUNK)
    if fmt == "zip":
        yield from _zip_members(
            whole, max_member_bytes, skip_through, max_members, max_zip_directory_bytes
        )
    else:
        yield from _tar_members(
            _decompressed(whole, fmt), max_member_bytes, skip_through, max_members
        )


def _too_large(size: int, limit: int) -> str:
    return f"the member is {size:,} bytes; the limit is {limit:,}"


def _too_many(limit: int) -> ArchiveError:
    return ArchiveError(
        f"the archive has more than {limit:,} entries (MAX_ARCHIVE_MEMBERS): "
        f"those after the first {limit:,} are not read"
    )


class _HeadersTooLarge(tarfile.TarError):
    """One entry's headers would take more than MAX_TAR_HEADER_BYTES (raised before reading)."""


class _HeaderBudget:
    """What tarfile reads an entry's headers from: the archive stream, refusing any read that
    would take the entry's headers past ``limit`` bytes before it is made.

    Skipping the previous member's data (``seek``) costs nothing here: only ``read`` counts,
    and tarfile reads headers whole, in one call each (a long name of any declared size).
    """

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._left:
            raise _HeadersTooLarge()
        self._left -= size
        return self._stream.read(size)

    def tell(self) -> int:
        return self._stream.tell()

    def seek(self, pos: int) -> int:  # tarfile's stream only seeks forward, from its start
        return self._stream.seek(pos)


class _BoundedTarFile(tarfile.TarFile):
    """A TarFile that reads each entry's headers within MAX_TAR_HEADER_BYTES.

    Without it, a GNU long name or pax header is read whole, whatever size it claims (a few
    KB of gzip can claim hundreds of MB of zeros), a chain of thousands of small ones is
    recursed into until Python's recursion limit, and an old GNU sparse map is read until
    the stream ends.
    """

    def next(self) -> tarfile.TarInfo | None:
        stream = self.fileobj
        self.fileobj = cast(IO[bytes], _HeaderBudget(cast(IO[bytes], stream), MAX_TAR_HEADER_BYTES))
        try:
            info = super().next()
        finally:
            self.fileobj = stream
        # Global pax headers apply to every later entry and add up across entries.
        if sum(len(k) + len(v) for k, v in self.pax_headers.items()) > MAX_TAR_HEADER_BYTES:
            raise _HeadersTooLarge()
        return info


def _decompressed(stream: BinaryIO, fmt: str) -> BinaryIO:
    """The tar inside a compressed stream, decompressed a bounded piece at a time.

    tarfile's own ``r|gz``/``r|bz2``/``r|xz`` decompress each 10 KB they read whole: 10 KB
    of bzip2 can hold gigabytes of zeros. These readers never return more than is asked.
    """
    if fmt == "gzip":
        return cast(BinaryIO, gzip.GzipFile(fileobj=stream, mode="rb"))
    if fmt == "bzip2":
        return cast(BinaryIO, bz2.BZ2File(stream))
    if fmt == "xz":
        return cast(BinaryIO, lzma.LZMAFile(stream))
    return stream


def _tar_members(
    stream: BinaryIO, limit: int, skip_through: int, max_members: int
) -> Iterator[Member]:
    index = -1
    try:
        # Names are decoded as UTF-8 whatever the locale; bytes that are not UTF-8 become
        # lone surrogates (surrogateescape), which name_reason refuses and printable_name
        # shows as \xNN.
        with _BoundedTarFile.open(
            fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape"
        ) as tar:
            for info in tar:
                index += 1
                # Streaming mode keeps every header it has seen: drop them, or a huge
                # archive's headers alone would fill memory.
                tar.members = []  # type: ignore[attr-defined]
                if index >= max_members:
                    raise _too_many(max_members)
                if index <= skip_through or info.isdir():
                    continue
                yield _tar_member(tar, info, index, limit)
    except _HeadersTooLarge as exc:
        raise ArchiveError(
            f"the archive's entry {index + 1} has tar headers (long name, pax or sparse map) "
            f"over {MAX_TAR_HEADER_BYTES:,} bytes: it and the entries after it are not read"
        ) from exc
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        where = "at its start" if index < 0 else f"after entry {index}"
        raise ArchiveError(f"the archive is truncated or corrupt {where}: {exc}") from exc


def _tar_member(tar: tarfile.TarFile, info: tarfile.TarInfo, index: int, limit: int) -> Member:
    name = printable_name(info.name)
    reason = name_reason(info.name) or unsafe_path_reason(info.name)
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


# The zip end-of-central-directory record, and the zip64 locator and record before it.
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")


def zip_directory_size(spool: IO[bytes]) -> int | None:
    """The size of a zip's central directory as its end record states it (zip64 too), the
    record found as zipfile finds it; None when there is none (zipfile then says why)."""
    end = spool.seek(0, io.SEEK_END)
    if end < _EOCD.size:
        return None
    spool.seek(end - _EOCD.size)
    last = spool.read(_EOCD.size)
    if last.startswith(b"PK\x05\x06") and last.endswith(b"\x00\x00"):  # no comment
        record_at = end - _EOCD.size
    else:  # a comment of up to 64 KB follows the record: the last signature wins
        tail_start = max(0, end - _EOCD.size - 0xFFFF)
        spool.seek(tail_start)
        tail = spool.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _EOCD.size:
            return None
        record_at = tail_start + at
    spool.seek(record_at)
    size = int(_EOCD.unpack(spool.read(_EOCD.size))[5])
    zip64_at = record_at - _EOCD64_LOCATOR.size - _EOCD64.size
    if zip64_at >= 0:
        spool.seek(zip64_at)
        before = spool.read(_EOCD64.size + _EOCD64_LOCATOR.size)
        record, locator = _EOCD64.unpack_from(before), _EOCD64_LOCATOR.unpack_from(before, 56)
        if locator[0] == b"PK\x06\x07" and record[0] == b"PK\x06\x06":
            size = int(record[8])
    return size


def _zip_members(
    stream: BinaryIO,
    limit: int,
    skip_through: int,
    max_members: int,
    max_directory_bytes: int,
) -> Iterator[Member]:
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        while chunk := stream.read(COPY_CHUNK):
            spool.write(chunk)
        # zipfile reads the whole central directory into memory first: size it before.
        directory = zip_directory_size(cast(IO[bytes], spool))
        if directory is not None and directory > max_directory_bytes:
            raise ArchiveError(
                f"the zip's central directory is {directory:,} bytes; the limit is "
                f"{max_directory_bytes:,} (MAX_ZIP_DIRECTORY_BYTES): send so many files as a tar"
            )
        spool.seek(0)
        try:
            archive = zipfile.ZipFile(spool)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ArchiveError(f"the zip archive is truncated or corrupt: {exc}") from exc
        except UnicodeDecodeError as exc:
            # zipfile decodes a name flagged UTF-8 strictly, for the whole directory at once.
            raise ArchiveError(
                "the zip's central directory flags a member's name as UTF-8 but it is not "
                f"valid UTF-8 ({exc.object[max(0, exc.start - 20) : exc.end + 20]!r}): "
                "the zip cannot be read"
            ) from exc
        with archive:
            for index, info in enumerate(archive.infolist()):
                if index >= max_members:
                    raise _too_many(max_members)
                if index <= skip_through or info.is_dir():
                    continue
                yield _zip_member(archive, info, index, limit)


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name as text, like a tar member's: UTF-8 when it is flagged so (zipfile
    decoded it), else the raw bytes decoded as UTF-8 with surrogateescape.

    zipfile decodes an unflagged name as cp437, as the format once said; in practice such
    names are UTF-8 (written by tools that do not set the flag) or some local code page
    (latin-1, cp932...) that cannot be told from the bytes. The first are read as what they
    are; the others are refused by :func:`name_reason` rather than stored as mojibake.
    """
    name = info.orig_filename  # before zipfile cuts it at a NUL
    if info.flag_bits & 0x800:
        return name
    return name.encode("cp437").decode("utf-8", "surrogateescape")


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, index: int, limit: int) -> Member:
    text = zip_member_name(info)
    name = printable_name(text)
    mode = info.external_attr >> 16  # Unix mode, when the zip was made on Unix
    reason = name_reason(text) or unsafe_path_reason(text)
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
