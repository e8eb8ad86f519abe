"""Archive reading under hostile headers and names: undecodable or control-character member
names fail their own item (and only it), oversized tar headers and over-long archives stop
the read cleanly (what came before is kept), a zip's central directory is sized before it is
read, and the scan does not recount the whole job after every batch."""

from __future__ import annotations

import bz2
import io
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.archives import MAX_TAR_HEADER_BYTES, ArchiveError, iter_members, printable_name
from core.settings import Settings
from core.storage import open_store
from models import Image, Job, JobItem, JobStatus
from tests.test_api import make_client
from tests.test_archives import MAX_MEMBER, MAX_PIXELS, items_of, jpeg, post_raw
from workers.archives import scan_archive

LATIN1_NAME = "José/José_0001.jpg"
ESCAPED_LATIN1 = "Jos\\xe9/Jos\\xe9_0001.jpg"


@pytest.fixture
def archive_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"max_upload_bytes": MAX_MEMBER, "max_image_pixels": MAX_PIXELS}
    )


@pytest.fixture
def client(archive_settings: Settings, sessions: sessionmaker[Session]) -> FlaskClient:
    return make_client(archive_settings, sessions)


def scan(
    job_id: str,
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    batch: int = 4,
    **limits: Any,
) -> bool:
    return scan_archive(
        job_id,
        sessions=sessions,
        store=open_store(settings.storage_url),
        max_member_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        scan_batch=batch,
        **limits,
    )


def upload_and_scan(
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    data: bytes,
    **options: Any,
) -> str:
    response = post_raw(client, data, filename="x.tar", label_from="folder")
    assert response.status_code == 202, response.get_json()
    job_id: str = response.get_json()["job_id"]
    assert scan(job_id, settings, sessions, **options)
    return job_id


def tar_of(
    entries: list[tuple[str, bytes]],
    *,
    tar_format: int = tarfile.GNU_FORMAT,
    encoding: str = "utf-8",
    pax: dict[str, dict[str, str]] | None = None,
    utf8: frozenset[str] = frozenset(),
) -> bytes:
    """An uncompressed tar; names are written with ``encoding`` (GNU format: raw bytes),
    those in ``utf8`` in UTF-8."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format, encoding=encoding) as tar:
        for name, data in entries:
            tar.encoding = "utf-8" if name in utf8 else encoding
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if pax and name in pax:
                info.pax_headers = pax[name]
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def gzip_stream(parts: Iterator[bytes]) -> bytes:
    """Gzip a stream of parts without holding their whole (possibly huge) concatenation."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(compressor.compress(part) for part in parts) + compressor.flush()


def header_block(name: bytes, kind: bytes, size: int) -> bytes:
    """One 512-byte GNU tar header block."""
    info = tarfile.TarInfo(name.decode("latin-1"))
    info.type, info.size = kind, size
    return info.tobuf(tarfile.GNU_FORMAT, encoding="latin-1")[:512]


def entry_blocks(name: str, data: bytes) -> bytes:
    return tar_of([(name, data)])[: 512 + -(-len(data) // 512) * 512]


def members_of(data: bytes, **options: Any) -> list[tuple[str, str | None]]:
    members = iter_members(io.BytesIO(data), max_member_bytes=MAX_MEMBER, **options)
    return [(m.name, m.error) for m in members]


def image_labels(session: Session) -> set[str | None]:
    return set(session.scalars(select(Image.label)))


# --- names that are not text ----------------------------------------------------------


def test_printable_name_escapes_what_is_not_text() -> None:
    assert printable_name("Jos\udce9/x.jpg") == "Jos\\xe9/x.jpg"
    assert printable_name("a\x00b\x1b[31m\x7f\x85.jpg") == "a\\x00b\\x1b[31m\\x7f\\x85.jpg"
    assert printable_name("Zoë/日本.jpg") == "Zoë/日本.jpg"


def test_a_latin1_tar_name_fails_its_own_item_and_the_rest_is_ingested(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    long_latin1 = "José/" + "é" * 120 + ".jpg"  # a GNU long-name header, in latin-1 too
    data = tar_of(
        [
            ("Ada/Ada_0001.jpg", jpeg(1)),
            (LATIN1_NAME, jpeg(2)),
            (long_latin1, jpeg(3)),
            ("Zoë/Zoë_01.jpg", jpeg(4)),  # UTF-8 in a GNU header: fine
        ],
        encoding="latin-1",
        utf8=frozenset({"Zoë/Zoë_01.jpg"}),
    )
    job_id = upload_and_scan(client, archive_settings, sessions, data)
    items = items_of(session, job_id)
    assert items["Ada/Ada_0001.jpg"] == ("pending", None)
    assert items["Zoë/Zoë_01.jpg"] == ("pending", None)
    status, error = items[ESCAPED_LATIN1]
    assert status == "failed"
    assert "not valid UTF-8" in (error or "")
    escaped_long = "Jos\\xe9/" + "\\xe9" * 120 + ".jpg"
    assert items[escaped_long[:255]][0] == "failed"
    job = session.get_one(Job, job_id)
    assert job.status != JobStatus.FAILED
    assert job.error is None
    assert (job.total, job.failed) == (4, 2)
    # Labels never come from a name that is not text.
    assert image_labels(session) == {"Ada", "Zoë"}


def test_pax_names_with_nul_control_characters_or_binary_bytes_fail_their_item(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    data = tar_of(
        [
            ("ok/ok_1.jpg", jpeg(1)),
            ("nul.jpg", jpeg(2)),
            ("esc.jpg", jpeg(3)),
            ("bin.jpg", jpeg(4)),
            ("ok/ok_2.jpg", jpeg(5)),
        ],
        tar_format=tarfile.PAX_FORMAT,
        pax={
            "nul.jpg": {"path": "evil/a\x00b.jpg"},
            "esc.jpg": {"path": "evil/\x1b[2Jclear.jpg"},
            # hdrcharset=BINARY: the path is raw bytes, here latin-1.
            "bin.jpg": {"path": "Jos\udce9/x.jpg", "hdrcharset": "BINARY"},
        },
        encoding="utf-8",
    )
    job_id = upload_and_scan(client, archive_settings, sessions, data)
    items = items_of(session, job_id)
    assert items["ok/ok_1.jpg"] == items["ok/ok_2.jpg"] == ("pending", None)
    assert items["evil/a\\x00b.jpg"][0] == "failed"
    assert "NUL" in (items["evil/a\\x00b.jpg"][1] or "")
    assert items["evil/\\x1b[2Jclear.jpg"][0] == "failed"
    assert "control character" in (items["evil/\\x1b[2Jclear.jpg"][1] or "")
    assert items["Jos\\xe9/x.jpg"][0] == "failed"
    assert image_labels(session) == {"ok"}


def patched_zip(name: bytes, *, utf8_flag: bool) -> bytes:
    """A zip with ``name`` as a member's raw name bytes (zipfile itself would write UTF-8)."""
    placeholder = "N" * len(name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Ada/Ada_0001.jpg", jpeg(1))
        archive.writestr(placeholder, jpeg(2))
        archive.writestr("Bob/Bob_0001.jpg", jpeg(3))
    data = buffer.getvalue().replace(placeholder.encode(), name)
    if utf8_flag:
        # General purpose flags: offset 6 in a local header, 8 in a central directory entry.
        out = bytearray(data)
        for signature, offset, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
            start = 0
            while (at := out.find(signature, start)) >= 0:
                if out[at + name_at : at + name_at + len(name)] == name:
                    out[at + offset + 1] |= 0x08  # bit 11: the name is UTF-8
                start = at + 4
        data = bytes(out)
    return data


def test_a_zip_name_that_is_not_utf8_fails_its_own_item(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    data = patched_zip(LATIN1_NAME.encode("latin-1"), utf8_flag=False)
    job_id = upload_and_scan(client, archive_settings, sessions, data)
    items = items_of(session, job_id)
    assert items["Ada/Ada_0001.jpg"] == items["Bob/Bob_0001.jpg"] == ("pending", None)
    assert items[ESCAPED_LATIN1][0] == "failed"
    assert "not valid UTF-8" in (items[ESCAPED_LATIN1][1] or "")
    assert image_labels(session) == {"Ada", "Bob"}


def test_a_zip_name_in_utf8_without_the_flag_is_read_as_utf8(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    # Many zip tools write UTF-8 names without setting the flag (cp437 would make "Zo├½").
    data = patched_zip("Zoë/Zoë_1.jpg".encode(), utf8_flag=False)
    job_id = upload_and_scan(client, archive_settings, sessions, data)
    assert items_of(session, job_id)["Zoë/Zoë_1.jpg"] == ("pending", None)
    assert "Zoë" in image_labels(session)


def test_a_zip_whose_utf8_flagged_name_is_not_utf8_fails_with_a_reason(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    data = patched_zip(LATIN1_NAME.encode("latin-1"), utf8_flag=True)
    with pytest.raises(ArchiveError, match="not valid UTF-8"):
        members_of(data)
    job_id = upload_and_scan(client, archive_settings, sessions, data)
    session.expire_all()
    job = session.get_one(Job, job_id)
    assert job.status == JobStatus.FAILED
    assert "not valid UTF-8" in (job.error or "")


# --- tar headers ------------------------------------------------------------------------


def test_an_oversized_pax_header_stops_the_read_and_keeps_what_came_before(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    long_path = "a/" + "x" * (MAX_TAR_HEADER_BYTES + 1000) + ".jpg"
    data = tar_of(
        [
            ("p/p_1.jpg", jpeg(1)),
            ("p/p_2.jpg", jpeg(2)),
            ("long.jpg", jpeg(3)),
            ("p/p_3.jpg", jpeg(4)),
        ],
        tar_format=tarfile.PAX_FORMAT,
        pax={"long.jpg": {"path": long_path}},
    )
    job_id = upload_and_scan(client, archive_settings, sessions, zlib_gzip(data))
    items = items_of(session, job_id)
    assert items["p/p_1.jpg"] == items["p/p_2.jpg"] == ("pending", None)
    assert items["(archive)"][0] == "failed"
    assert f"{MAX_TAR_HEADER_BYTES:,}" in (items["(archive)"][1] or "")
    assert len(items) == 3
    job = session.get_one(Job, job_id)
    assert "header" in (job.error or "")


def zlib_gzip(data: bytes) -> bytes:
    return gzip_stream(iter([data]))


def peak_of_reading(data: bytes) -> tuple[list[str], str, int]:
    """The members read before the archive is refused, the reason, and the peak of Python
    memory allocated meanwhile."""
    seen: list[str] = []
    tracemalloc.start()
    try:
        try:
            for member in iter_members(io.BytesIO(data), max_member_bytes=MAX_MEMBER):
                seen.append(member.name)
        except ArchiveError as exc:
            reason = str(exc)
        else:
            reason = ""
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen, reason, peak


def test_a_huge_long_name_header_is_refused_before_it_is_read() -> None:
    """A few hundred KB of gzip that claim a 64 MB GNU long name: never held in memory."""
    size = 64 * 1024 * 1024
    zeros = bytes(1024 * 1024)
    data = gzip_stream(
        iter(
            [
                entry_blocks("p/p_1.jpg", jpeg(1)),
                header_block(b"././@LongLink", tarfile.GNUTYPE_LONGNAME, size),
                *(zeros for _ in range(size // len(zeros))),
                entry_blocks("p/p_2.jpg", jpeg(2)),
            ]
        )
    )
    assert len(data) < 1024 * 1024
    seen, reason, peak = peak_of_reading(data)
    assert seen == ["p/p_1.jpg"]
    assert "entry 1 has tar headers" in reason
    assert peak < 16 * 1024 * 1024


def test_a_bzip2_bomb_is_decompressed_a_bounded_piece_at_a_time() -> None:
    """bzip2 packs 128 MB of zeros in under 200 bytes: tarfile's own r|bz2 would inflate
    them in one call while skipping a member over the size limit."""
    size = 128 * 1024 * 1024
    compressor = bz2.BZ2Compressor(9)
    zeros = bytes(8 * 1024 * 1024)
    parts = [
        compressor.compress(entry_blocks("p/p_1.jpg", jpeg(1))),
        compressor.compress(header_block(b"big.bin", tarfile.REGTYPE, size)),
        *(compressor.compress(zeros) for _ in range(size // len(zeros))),
        compressor.compress(entry_blocks("p/p_2.jpg", jpeg(2)) + bytes(1024)),
        compressor.flush(),
    ]
    data = b"".join(parts)
    assert len(data) < 64 * 1024
    seen, reason, peak = peak_of_reading(data)
    assert seen == ["p/p_1.jpg", "big.bin", "p/p_2.jpg"]
    assert reason == ""
    assert peak < 16 * 1024 * 1024


def test_a_chain_of_small_extension_headers_is_refused() -> None:
    """Thousands of tiny long-name headers in a row (each one recursed into by tarfile)."""
    one = header_block(b"././@LongLink", tarfile.GNUTYPE_LONGNAME, 10) + b"n" * 10 + bytes(502)
    data = gzip_stream(iter([entry_blocks("p/p_1.jpg", jpeg(1)), one * 5000]))
    with pytest.raises(ArchiveError, match="header"):
        members_of(data)


def test_a_sparse_map_bomb_is_refused() -> None:
    """An old GNU sparse member whose extension blocks never end."""
    head = bytearray(header_block(b"sparse.jpg", tarfile.GNUTYPE_SPARSE, 0))
    head[482] = 1  # isextended
    head[148:156] = b"        "
    head[148:155] = f"{sum(head):06o}\x00".encode()
    extension = (b"00000000001\x00" + b"00000000001\x00") * 21 + b"\x01" + bytes(7)
    data = gzip_stream(
        iter([entry_blocks("p/p_1.jpg", jpeg(1)), bytes(head), *([extension * 2048] * 16)])
    )
    with pytest.raises(ArchiveError, match="header"):
        members_of(data)


# --- member counts and the zip directory ------------------------------------------------


def test_members_past_the_member_cap_are_not_read(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    entries = [(f"p/p_{i}.jpg", jpeg(i)) for i in range(10)]
    job_id = upload_and_scan(client, archive_settings, sessions, tar_of(entries), max_members=6)
    items = items_of(session, job_id)
    assert sorted(items) == ["(archive)", *sorted(f"p/p_{i}.jpg" for i in range(6))]
    assert "more than 6" in (items["(archive)"][1] or "")
    job = session.get_one(Job, job_id)
    assert (job.total, job.failed) == (7, 1)
    assert job.status != JobStatus.FAILED


def test_zip_members_past_the_member_cap_are_not_read(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(10):
            archive.writestr(f"p/p_{i}.jpg", jpeg(i))
    job_id = upload_and_scan(client, archive_settings, sessions, buffer.getvalue(), max_members=6)
    items = items_of(session, job_id)
    assert len(items) == 7
    assert "more than 6" in (items["(archive)"][1] or "")


def test_a_zip_central_directory_over_the_cap_is_not_read(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(50):
            archive.writestr(f"folder_{i:03d}/some_rather_long_file_name_{i:03d}.jpg", b"x")
    data = buffer.getvalue()
    assert len(members_of(data, max_zip_directory_bytes=10_000)) == 50
    with pytest.raises(ArchiveError, match="central directory"):
        members_of(data, max_zip_directory_bytes=2_000)
    job_id = upload_and_scan(
        client, archive_settings, sessions, data, max_zip_directory_bytes=2_000
    )
    session.expire_all()
    job = session.get_one(Job, job_id)
    assert job.status == JobStatus.FAILED
    assert "central directory" in (job.error or "")


# --- progress ---------------------------------------------------------------------------


@pytest.fixture
def statements(sessions: sessionmaker[Session]) -> Iterator[list[str]]:
    seen: list[str] = []
    bind = sessions.kw["bind"]

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(bind, "before_cursor_execute", record)
    yield seen
    event.remove(bind, "before_cursor_execute", record)


def test_the_scan_does_not_recount_the_whole_job_after_every_batch(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
    statements: list[str],
) -> None:
    entries = [(f"p/p_{i}.jpg", jpeg(i % 3)) for i in range(37)]  # duplicates: skipped
    entries += [(f"t/{i}.txt", b"not an image") for i in range(5)]
    response = post_raw(client, tar_of(entries))
    job_id = response.get_json()["job_id"]
    statements.clear()
    assert scan(job_id, archive_settings, sessions, batch=4)
    # A count over all the job's items, not only over a batch's positions.
    recounts = [
        s
        for s in statements
        if "GROUP BY" in s and "FROM job_items" in s and "job_items.position IN" not in s
    ]
    assert len(recounts) == 1  # when the scan ends, not after each of the 11 batches of 4
    session.expire_all()
    job = session.get_one(Job, job_id)
    counts = dict(
        session.execute(
            select(JobItem.status, func.count())
            .where(JobItem.job_id == job_id)
            .group_by(JobItem.status)
        ).all()
    )
    assert (job.total, job.failed, job.skipped) == (42, 5, 34)
    assert sum(counts.values()) == job.total


def test_progress_while_reading_counts_every_recorded_batch(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    entries = [(f"p/p_{i}.jpg", jpeg(i % 2)) for i in range(6)]
    entries += [(f"t/{i}.txt", b"not an image") for i in range(6)]
    response = post_raw(client, tar_of(entries))
    job_id = response.get_json()["job_id"]
    seen = []
    for _ in range(3):
        scan_archive(
            job_id,
            sessions=sessions,
            store=open_store(archive_settings.storage_url),
            max_member_bytes=MAX_MEMBER,
            max_pixels=MAX_PIXELS,
            scan_batch=4,
            deadline=time.monotonic(),
        )
        progress = client.get(f"/v1/jobs/{job_id}").get_json()["progress"]
        seen.append((progress["total"], progress["failed"], progress["skipped"]))
    assert seen == [(4, 0, 2), (8, 2, 4), (12, 6, 4)]
