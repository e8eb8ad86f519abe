"""Contract tests for core.storage, run against a local folder and a real S3 server.

The S3 server is moto's, on loopback, started once for this module. Every test gets its own
bucket, so tests do not see each other's objects.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import socket
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from core.storage import (
    DEFAULT_CONTENT_TYPE,
    InvalidStoreURL,
    LocalStore,
    ObjectNotFound,
    ObjectStore,
    S3Store,
    StorageError,
    content_key,
    open_store,
    put_content,
    validate_key,
)

ACCESS_KEY = "test-access"
SECRET_KEY = "s3cr3t/with+odd=chars"  # percent-encoded in URLs below
SECRET_IN_URL = "s3cr3t%2Fwith%2Bodd%3Dchars"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 and a free port; stopped when the module ends."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO; keep test output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"{host}:{port}"
    finally:
        server.stop()


def _s3_url(endpoint: str, bucket: str, query: str = "") -> str:
    return f"s3://{ACCESS_KEY}:{SECRET_IN_URL}@{endpoint}/{bucket}" + (f"?{query}" if query else "")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(f"file://{tmp_path / 'objects'}")
    endpoint = request.getfixturevalue("s3_endpoint")
    # part_size_mb=5 (the S3 minimum) so a 12 MB stream takes three parts.
    return open_store(_s3_url(endpoint, f"b-{uuid.uuid4().hex[:12]}", "part_size_mb=5"))


class GeneratedStream(io.RawIOBase):
    """A deterministic byte stream made on demand, recording how much was asked for at once.

    If a store read it whole, ``max_request`` would be ``None``/-1 or the whole size.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.max_request = 0
        self.whole_read = False

    def readable(self) -> bool:
        return True

    @staticmethod
    def block(index: int) -> bytes:
        return hashlib.sha256(index.to_bytes(8, "big")).digest()  # 32 bytes

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self.whole_read = True
            size = self.size - self.pos
        self.max_request = max(self.max_request, size)
        end = min(self.size, self.pos + size)
        out = bytearray()
        first, last = self.pos // 32, (end + 31) // 32
        for i in range(first, last):
            out += self.block(i)
        chunk = bytes(out[self.pos - first * 32 : end - first * 32])
        self.pos = end
        return chunk

    @classmethod
    def expected_digest(cls, size: int) -> str:
        h = hashlib.sha256()
        data = b"".join(cls.block(i) for i in range((size + 31) // 32))[:size]
        h.update(data)
        return h.hexdigest()


class CountingStore:
    """Delegates to a store and counts uploads: proves put_content's dedup on any backend."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.puts = 0

    def put(self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        self.puts += 1
        self.inner.put(key, data, content_type=content_type)

    def put_stream(
        self, key: str, stream: BinaryIO, *, length: int | None, content_type: str = ""
    ) -> None:
        self.puts += 1
        self.inner.put_stream(key, stream, length=length, content_type=content_type)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def open(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return self.inner.open(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def check(self) -> None:
        self.inner.check()

    def url(self) -> str:
        return self.inner.url()


def _assert_no_credentials(text: str) -> None:
    for secret in (ACCESS_KEY, SECRET_KEY, SECRET_IN_URL):
        assert secret not in text


def _closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- contract


def test_is_an_object_store(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_get_exists_delete(store: ObjectStore) -> None:
    assert not store.exists("a/b/c.jpg")
    store.put("a/b/c.jpg", b"\xff\xd8jpeg bytes", content_type="image/jpeg")
    assert store.exists("a/b/c.jpg")
    assert store.get("a/b/c.jpg") == b"\xff\xd8jpeg bytes"
    with store.open("a/b/c.jpg") as f:
        assert f.read(4) == b"\xff\xd8jp"
        assert f.read() == b"eg bytes"
    store.put("a/b/c.jpg", b"replaced")
    assert store.get("a/b/c.jpg") == b"replaced"
    store.delete("a/b/c.jpg")
    assert not store.exists("a/b/c.jpg")


def test_empty_object(store: ObjectStore) -> None:
    store.put("empty", b"")
    assert store.exists("empty")
    assert store.get("empty") == b""


def test_delete_missing_is_not_an_error(store: ObjectStore) -> None:
    store.delete("never/was/here")
    store.delete("never/was/here")


def test_get_missing_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match="nope"):
        store.get("nope")
    with pytest.raises(ObjectNotFound), store.open("nope"):
        pass
    assert issubclass(ObjectNotFound, StorageError)


def test_put_stream_unknown_length_is_streamed(store: ObjectStore) -> None:
    size = 12 * 1024 * 1024 + 12_345  # > 12 MB: three 5 MiB parts on S3
    stream = GeneratedStream(size)
    store.put_stream(
        "big/stream.bin", cast(BinaryIO, stream), length=None, content_type="application/x-tar"
    )

    assert stream.pos == size
    assert not stream.whole_read
    # At most one part (5 MiB + the 1 byte minio reads ahead) was requested at once.
    assert stream.max_request <= 5 * 1024 * 1024 + 1
    h = hashlib.sha256()
    with store.open("big/stream.bin") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    assert h.hexdigest() == GeneratedStream.expected_digest(size)
    if isinstance(store, S3Store):
        # A multipart upload's ETag is "<md5 of part md5s>-<number of parts>".
        etag = store._client.stat_object(store.bucket, "big/stream.bin").etag
        assert etag is not None
        assert etag.strip('"').endswith("-3")


def test_put_stream_known_length(store: ObjectStore) -> None:
    store.put_stream("k", io.BytesIO(b"0123456789"), length=4)
    assert store.get("k") == b"0123"  # exactly `length` bytes are taken
    with pytest.raises(StorageError):
        store.put_stream("short", io.BytesIO(b"abc"), length=10)
    assert not store.exists("short")


def test_put_content_dedups(store: ObjectStore) -> None:
    counting = CountingStore(store)
    data = b"the same photo, uploaded twice"
    key, digest = put_content(counting, data, content_type="image/jpeg")
    assert digest == hashlib.sha256(data).hexdigest()
    assert key == f"objects/sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    assert counting.puts == 1
    assert put_content(counting, data, content_type="image/jpeg") == (key, digest)
    assert counting.puts == 1  # second time: found, not uploaded
    assert store.get(key) == data
    put_content(counting, b"other bytes", content_type="image/jpeg")
    assert counting.puts == 2


def test_check_ok(store: ObjectStore) -> None:
    store.check()
    store.check()


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../escape",
        "a/../../escape",
        "a/./b",
        "/etc/passwd",
        "a//b",
        "a/",
        "a\\..\\b",
        "nul\x00byte",
        "new\nline",
        "x" * 1025,
    ],
)
def test_bad_keys_are_rejected(key: str, tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "root")
    with pytest.raises(InvalidStoreURL):
        validate_key(key)
    with pytest.raises(InvalidStoreURL):
        local.put(key, b"x")
    with pytest.raises(InvalidStoreURL):
        local.get(key)
    with pytest.raises(InvalidStoreURL):
        local.delete(key)
    assert not (tmp_path / "escape").exists()
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "root"])


def test_content_key() -> None:
    digest = "AB" + "cd" * 31
    assert content_key(digest) == f"objects/sha256/ab/cd/{digest.lower()}"
    assert content_key(digest, prefix="crops").startswith("crops/sha256/ab/cd/")
    for bad in ["abc", "g" * 64, "a" * 63, "a" * 65, "../" + "a" * 61]:
        with pytest.raises(ValueError, match="SHA-256"):
            content_key(bad)


# --------------------------------------------------------------------------- local folder


def test_local_writes_are_atomic_and_private(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    local.put("x/y.bin", b"data")
    local.put_stream("x/z.bin", io.BytesIO(b"more"), length=None)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y.bin", "z.bin"]  # no temps
    assert stat.S_IMODE((tmp_path / "x" / "y.bin").stat().st_mode) == 0o600


def test_local_failed_stream_leaves_nothing(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int | None = -1) -> bytes:
            raise OSError("disk on fire")

    local = LocalStore(tmp_path)
    with pytest.raises(StorageError, match="disk on fire"):
        local.put_stream("a/b", cast(BinaryIO, Broken()), length=None)
    assert list((tmp_path / "a").iterdir()) == []


def test_local_put_content_does_not_rewrite(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    key, _ = put_content(local, b"photo", content_type="image/png")
    path = tmp_path / key
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(before - 10**9, before - 10**9))  # a rewrite would move mtime forward
    put_content(local, b"photo", content_type="image/png")
    assert path.stat().st_mtime_ns == before - 10**9


def test_local_check_failures_are_readable(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_bytes(b"")
    with pytest.raises(StorageError, match="not-a-folder"):
        LocalStore(a_file).check()
    with pytest.raises(StorageError, match="cannot be created"):
        LocalStore(a_file / "below").check()
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(StorageError, match="not writable"):
                LocalStore(ro).check()
        finally:
            ro.chmod(0o700)


def test_local_directory_is_not_an_object(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    local.put("dir/file", b"x")
    assert not local.exists("dir")
    with pytest.raises(ObjectNotFound):
        local.get("dir")
    local.delete("dir")  # a no-op, not an error
    assert local.get("dir/file") == b"x"


def test_open_store_local_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url, expected in [
        (f"file://{tmp_path}/a", tmp_path / "a"),
        (f"file:{tmp_path}/b", tmp_path / "b"),
        ("file:rel/c", tmp_path / "rel" / "c"),
        ("plain/d", tmp_path / "plain" / "d"),
        (str(tmp_path / "e"), tmp_path / "e"),
        (f"file://{tmp_path}/f?fsync=false", tmp_path / "f"),
    ]:
        opened = open_store(url)
        assert isinstance(opened, LocalStore)
        assert opened.root == expected
        assert opened.url() == expected.as_uri()
    assert isinstance(opened, LocalStore)
    assert opened.fsync is False
    for bad in ["", "ftp://host/x", "file://otherhost/x", "file:///x?colour=blue"]:
        with pytest.raises(InvalidStoreURL):
            open_store(bad)


# --------------------------------------------------------------------------- S3


def test_s3_url_parsing_and_display(s3_endpoint: str) -> None:
    opened = open_store(_s3_url(s3_endpoint, "my-bucket", "region=us-east-1"))
    assert isinstance(opened, S3Store)
    assert opened.url() == f"s3://{s3_endpoint}/my-bucket"
    _assert_no_credentials(repr(opened))
    creds = opened._client._provider.retrieve()  # type: ignore[union-attr]
    assert (creds.access_key, creds.secret_key) == (ACCESS_KEY, SECRET_KEY)  # percent-decoded

    also = open_store(f"minio://{ACCESS_KEY}:{SECRET_IN_URL}@h:9000/bk2/some/prefix?secure=true")
    assert isinstance(also, S3Store)
    assert also.url() == "s3://h:9000/bk2/some/prefix?secure=true"
    assert also.secure

    for bad in [
        f"s3://{ACCESS_KEY}:{SECRET_IN_URL}@h:9000",  # no bucket
        f"s3://{ACCESS_KEY}:{SECRET_IN_URL}@h:9000/Bad_Bucket!",
        f"s3://{ACCESS_KEY}:{SECRET_IN_URL}@h:9000/b?secure=maybe",
        f"s3://{ACCESS_KEY}:{SECRET_IN_URL}@h:9000/b?colour=blue",
        f"s3://{ACCESS_KEY}:{SECRET_IN_URL}@h:notaport/b",
    ]:
        with pytest.raises(InvalidStoreURL) as info:
            open_store(bad)
        _assert_no_credentials(str(info.value))


def test_s3_prefix_keeps_keys_apart(s3_endpoint: str) -> None:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    plain = open_store(_s3_url(s3_endpoint, bucket))
    prefixed = open_store(_s3_url(s3_endpoint, f"{bucket}/tenant-a"))
    prefixed.put("k", b"in prefix")
    assert plain.get("tenant-a/k") == b"in prefix"
    assert not plain.exists("k")


def test_s3_bucket_creation_race(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    first = open_store(_s3_url(s3_endpoint, bucket))
    second = open_store(_s3_url(s3_endpoint, bucket))
    assert isinstance(second, S3Store)
    first.check()  # creates the bucket
    # The second process saw "no bucket" just before the first one created it.
    monkeypatch.setattr(second._client, "bucket_exists", lambda _name: False)
    second.put("k", b"v")  # make_bucket says it exists already: fine
    assert first.get("k") == b"v"


def test_s3_missing_bucket_reads_as_missing(s3_endpoint: str) -> None:
    missing = open_store(_s3_url(s3_endpoint, f"never-{uuid.uuid4().hex[:12]}"))
    assert not missing.exists("k")
    with pytest.raises(ObjectNotFound):
        missing.get("k")
    missing.delete("k")


def test_s3_unreachable_endpoint_is_readable() -> None:
    port = _closed_port()
    dead = open_store(f"s3://{ACCESS_KEY}:{SECRET_IN_URL}@127.0.0.1:{port}/bucket")
    with pytest.raises(StorageError) as info:
        dead.check()
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    _assert_no_credentials(message)
    with pytest.raises(StorageError):
        dead.get("k")
    with pytest.raises(StorageError):
        dead.put("k", b"v")
