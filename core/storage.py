"""The object store: where the bytes of images (and face crops) live.

Two backends behind one small protocol, chosen by ``STORAGE_URL``:

- ``file:///abs/path``, ``file:relative/path`` or a plain path: :class:`LocalStore`, a folder
  (the embedded mode).
- ``s3://ACCESS_KEY:SECRET_KEY@host:port/bucket[/prefix]?secure=false&region=us-east-1``
  (``minio://`` is the same): :class:`S3Store`, any S3 server (MinIO, AWS, ...).

Objects are written under content-addressed keys (:func:`content_key`, :func:`put_content`),
so an image uploaded twice is stored once. Postgres is the record of which key belongs to
which image; the store only holds bytes. Content types are kept by S3 but not by the local
folder: the database records them too, so nothing relies on the store for them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from minio import Minio

__all__ = [
    "InvalidStoreURL",
    "LocalStore",
    "ObjectNotFound",
    "ObjectStore",
    "S3Store",
    "StorageError",
    "content_key",
    "open_store",
    "put_content",
    "validate_key",
]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Copy buffer for streams: big enough for throughput, small enough to never matter for memory.
_CHUNK = 1024 * 1024
# S3 multipart part size for streams of unknown length. S3 allows at most 10,000 parts, so
# 16 MiB parts cap one streamed object at ~160 GB; one part is the most held in memory.
DEFAULT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # the S3 minimum for every part but the last
_MAX_KEY_BYTES = 1024  # the S3 limit on object names
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class StorageError(RuntimeError):
    """The object store failed; the message says where and why, never with credentials."""


class ObjectNotFound(StorageError):  # noqa: N818  (the name is part of the agreed interface)
    """No object under that key."""


class InvalidStoreURL(StorageError, ValueError):  # noqa: N818
    """``STORAGE_URL`` (or a key) cannot be used. Also a ValueError: it is a configuration error."""


@runtime_checkable
class ObjectStore(Protocol):
    """What the api and the workers need from an object store."""

    def put(self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        """Store ``data`` under ``key``, replacing what was there (atomically)."""
        ...

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        length: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> None:
        """Store a stream without ever holding it whole in memory.

        ``length=None`` means unknown (multipart upload on S3). With a length, exactly that many
        bytes are read; a shorter stream is an error.
        """
        ...

    def get(self, key: str) -> bytes:
        """The whole object; :class:`ObjectNotFound` when missing."""
        ...

    def open(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A streaming reader, as a context manager; :class:`ObjectNotFound` when missing."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def check(self) -> None:
        """Readiness probe: cheap, raises :class:`StorageError` with a readable reason."""
        ...

    def url(self) -> str:
        """Where it lives, for display and logs, without credentials."""
        ...


# --------------------------------------------------------------------------- keys


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`InvalidStoreURL`.

    The same rules hold for every backend, so a key that works on S3 also works on a local
    folder and cannot escape it: relative, ``/``-separated, no empty, ``.`` or ``..`` segment,
    no backslash, NUL or other control character, at most 1,024 bytes.
    """
    if not isinstance(key, str) or not key:
        raise InvalidStoreURL("object key must be a non-empty string")
    if len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES:
        raise InvalidStoreURL(f"object key is longer than {_MAX_KEY_BYTES} bytes")
    if "\\" in key or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidStoreURL(f"object key {key!r} contains a backslash or control character")
    if key.startswith("/"):
        raise InvalidStoreURL(f"object key {key!r} must be relative")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidStoreURL(f"object key {key!r} has an empty, '.' or '..' segment")
    return key


def content_key(sha256_hex: str, *, prefix: str = "objects") -> str:
    """The content-addressed key of a SHA-256 digest: ``objects/sha256/ab/cd/abcd...``.

    Two levels of fan-out keep any one folder of a local store small (65,536 folders hold
    millions of objects at a few dozen each).
    """
    if not isinstance(sha256_hex, str) or not _SHA256_HEX.fullmatch(sha256_hex):
        raise ValueError(f"not a SHA-256 hex digest (64 hex characters): {sha256_hex!r}")
    digest = sha256_hex.lower()  # one canonical spelling, one object
    key = f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    if prefix:
        key = f"{prefix.strip('/')}/{key}"
    return validate_key(key)


def put_content(
    store: ObjectStore, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
) -> tuple[str, str]:
    """Store ``data`` under its content address; return ``(key, sha256_hex)``.

    An object already under that key has the same bytes by construction, so it is not
    uploaded again. Two writers racing on the same new content both upload identical bytes,
    which is harmless.
    """
    digest = hashlib.sha256(data).hexdigest()
    key = content_key(digest)
    if not store.exists(key):
        store.put(key, data, content_type=content_type)
    return key, digest


# --------------------------------------------------------------------------- local folder


class LocalStore:
    """A folder on a local (or shared POSIX) file system.

    Writes go to a temporary file in the destination's own folder, then ``os.replace`` puts it
    in place, so a reader never sees half an object and a crash leaves at most a stray
    ``.tmp-*`` file. With ``fsync=True`` (the default) the file and its folder are fsynced
    before ``put`` returns: a content-addressed object that survived a power cut half-written
    would never be rewritten (``put_content`` skips existing keys), so durability is worth the
    extra milliseconds. Files are created mode 0600: face photos are personal data and only
    the service's own user needs to read them.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalStore({self.url()!r})"

    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self.root.joinpath(*key.split("/"))
        # validate_key already rules out escaping; this is a second, independent guard.
        if os.path.commonpath([self.root, path]) != str(self.root):
            raise InvalidStoreURL(f"object key {key!r} escapes the store")
        return path

    def _fsync_dir(self, folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, key: str, chunks: Iterator[bytes], expected: int | None) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} under {self.url()}: {exc.strerror}") from exc
        tmp = Path(tmp_name)
        try:
            written = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
                if expected is not None and written != expected:
                    raise StorageError(
                        f"stream for {key!r} ended after {written} of {expected} bytes"
                    )
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, path)
            if self.fsync:
                self._fsync_dir(path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {key!r} under {self.url()}: {exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put(self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        self._write(key, iter((bytes(data),)), None)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        length: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> None:
        if length is not None and length < 0:
            raise ValueError("length must be None (unknown) or >= 0")
        self._write(key, _read_chunks(stream, length), length)

    def get(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        try:
            f = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self.url()}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} from {self.url()}: {exc.strerror}") from exc
        with f:
            yield f

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            return  # a folder is not an object: nothing to delete
        except OSError as exc:
            if exc.errno == errno.EPERM and path.is_dir():  # unlink(dir) on some systems
                return
            raise StorageError(f"cannot delete {key!r} from {self.url()}: {exc.strerror}") from exc

    def check(self) -> None:
        """Create the folder if needed and prove it is writable with a throw-away file."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"object store folder {self.root} cannot be created: {exc.strerror}"
            ) from exc
        if not self.root.is_dir():
            raise StorageError(f"object store path {self.root} is not a folder")
        try:
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".tmp-check-"):
                pass
        except OSError as exc:
            raise StorageError(
                f"object store folder {self.root} is not writable: {exc.strerror}"
            ) from exc


def _read_chunks(stream: BinaryIO, length: int | None) -> Iterator[bytes]:
    """Read ``stream`` in bounded chunks; with a length, stop after exactly that many bytes."""
    remaining = length
    while remaining is None or remaining > 0:
        want = _CHUNK if remaining is None else min(_CHUNK, remaining)
        chunk = stream.read(want)
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


# --------------------------------------------------------------------------- S3 / MinIO


class S3Store:
    """An S3 bucket through the ``minio`` client (MinIO, AWS S3 or anything S3-speaking).

    The bucket is created on first write if missing. Streams are uploaded with one part in
    flight at a time (``num_parallel_uploads=1``), so memory stays at about one part however
    big the stream is.
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        secure: bool = False,
        region: str | None = None,
        prefix: str = "",
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retries: int = 2,
    ) -> None:
        import certifi  # noqa: PLC0415  (minio's own dependency; only S3 users pay for it)
        import urllib3  # noqa: PLC0415
        from minio import Minio  # noqa: PLC0415
        from minio.helpers import check_bucket_name  # noqa: PLC0415

        check_bucket_name(bucket, strict=True)  # fail at startup, not at the first upload
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3 minimum)")
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self.region = region
        self.prefix = validate_key(prefix.strip("/")) + "/" if prefix.strip("/") else ""
        self.part_size = part_size
        # minio's default pool retries 5 times with 5-minute timeouts: a readiness probe on a
        # dead endpoint would hang for minutes. Short connect timeout, few retries.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self._client: Minio = Minio(
            endpoint,
            access_key=access_key or None,
            secret_key=secret_key if access_key else None,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    def __repr__(self) -> str:  # never the default repr: it would show the credentials
        return f"S3Store({self.url()!r})"

    def url(self) -> str:
        where = f"s3://{self.endpoint}/{self.bucket}"
        if self.prefix:
            where += "/" + self.prefix.rstrip("/")
        return where + ("?secure=true" if self.secure else "")

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """Turn minio/urllib3 errors into StorageError / ObjectNotFound with readable messages."""
        import urllib3  # noqa: PLC0415
        from minio.error import MinioException, S3Error  # noqa: PLC0415

        try:
            yield
        except S3Error as exc:
            if key is not None and exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise ObjectNotFound(f"no object {key!r} in {self.url()}") from None
            raise StorageError(
                f"S3 {action} failed on {self.url()}: {exc.code}: {exc.message}"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StorageError(
                f"S3 endpoint {self.endpoint} unreachable during {action}: {_net_reason(exc)}"
            ) from exc
        except MinioException as exc:  # InvalidResponseError, ServerError: not S3, or broken
            raise StorageError(f"S3 {action} failed on {self.url()}: {exc}") from exc
        except (OSError, ValueError) as exc:  # a short stream, a size S3 cannot take
            raise StorageError(f"S3 {action} failed on {self.url()}: {exc}") from exc

    def _ensure_bucket(self) -> None:
        """Create the bucket once per process; another process may be creating it too."""
        if self._bucket_ready:
            return
        from minio.error import S3Error  # noqa: PLC0415

        with self._bucket_lock:
            if self._bucket_ready:
                return
            with self._errors("bucket check"):
                if not self._client.bucket_exists(self.bucket):
                    try:
                        self._client.make_bucket(self.bucket)
                    except S3Error as exc:
                        # Lost the race to another process (or a server that says so for
                        # our own bucket): the bucket exists, which is all we wanted.
                        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
            self._bucket_ready = True

    def put(self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        self.put_stream(key, io.BytesIO(data), length=len(data), content_type=content_type)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        length: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> None:
        if length is not None and length < 0:
            raise ValueError("length must be None (unknown) or >= 0")
        name = self._name(key)
        self._ensure_bucket()
        with self._errors("upload"):
            # Above part_size (known or not) minio switches to multipart and reads one part
            # at a time; below it, one PUT of at most part_size bytes.
            self._client.put_object(
                self.bucket,
                name,
                stream,
                -1 if length is None else length,
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                part_size=self.part_size,
                num_parallel_uploads=1,
            )

    def get(self, key: str) -> bytes:
        with self.open(key) as f, self._errors("download", key):
            return f.read()

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        name = self._name(key)
        with self._errors("download", key):
            response = self._client.get_object(self.bucket, name)
        try:
            yield cast(BinaryIO, response)
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            with self._errors("stat", key):
                self._client.stat_object(self.bucket, name)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            with self._errors("delete", key):
                self._client.remove_object(self.bucket, name)  # S3: a missing key is fine
        except ObjectNotFound:
            return  # the bucket itself is missing: nothing to delete

    def check(self) -> None:
        """One HEAD on the bucket (created if missing, as a first write would)."""
        self._ensure_bucket()


def _net_reason(exc: BaseException) -> str:
    """The useful end of a urllib3 error ("Connection refused"), without its long prefix."""
    reason: BaseException = getattr(exc, "reason", None) or exc
    text = str(reason)
    # urllib3 writes "<HTTPConnection(host=..., port=...)>: Failed to establish a new
    # connection: [Errno 111] Connection refused"; the endpoint is already in our message.
    marker = "Failed to establish a new connection: "
    if marker in text:
        text = text.split(marker, 1)[1]
    return text or type(reason).__name__


# --------------------------------------------------------------------------- URLs


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidStoreURL(f"storage URL option {name}={value!r} is not true/false")


def _redact(url: str) -> str:
    """``url`` with any user:password replaced, for error messages."""
    return re.sub(r"//[^/@]*@", "//***@", url, count=1)


def open_store(url: str) -> ObjectStore:
    """Open the store named by ``url`` (see the module docstring). Nothing is contacted yet.

    Local: ``file:///abs/path``, ``file:relative/path`` or a plain path; option ``fsync=false``.
    S3: ``s3://KEY:SECRET@host:port/bucket[/prefix]`` (or ``minio://``); credentials may be
    percent-encoded (a ``/`` in a secret must be written ``%2F``); without credentials the
    requests are anonymous. Options: ``secure=true|false`` (default false: plain HTTP, as a
    MinIO next to the app usually is; set it for AWS or any endpoint across a network),
    ``region=...`` (default: asked of the server), ``part_size_mb=N`` (multipart part size,
    default 16).
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidStoreURL("storage URL is empty")
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", url) else ""

    if scheme in ("s3", "minio"):
        return _open_s3(url)
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise InvalidStoreURL(f"file URL must be local: {url!r}")
        options = _options(parts.query, url)
        fsync = _parse_bool("fsync", options.pop("fsync", "true"))
        if options:
            raise InvalidStoreURL(f"unknown file storage option(s): {', '.join(sorted(options))}")
        path = unquote(parts.path)
        if not path:
            raise InvalidStoreURL(f"file URL names no folder: {url!r}")
        return LocalStore(path, fsync=fsync)
    if scheme and len(scheme) > 1:  # "C:" would be a drive letter, anything else a typo
        raise InvalidStoreURL(
            f"unsupported storage URL scheme {scheme!r} in {_redact(url)!r}: "
            "use file://, s3:// or minio://"
        )
    return LocalStore(url)


def _options(query: str, url: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InvalidStoreURL(f"storage URL has a malformed query: {_redact(url)!r}") from None
    return {name.lower(): values[-1] for name, values in parsed.items()}


def _open_s3(url: str) -> S3Store:
    parts = urlsplit(url)
    shown = _redact(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidStoreURL(f"S3 URL has an invalid port: {shown!r}") from None
    if not host:
        raise InvalidStoreURL(f"S3 URL names no host: {shown!r}")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    endpoint = f"{host}:{port}" if port else host
    path = unquote(parts.path).strip("/")
    bucket, _, prefix = path.partition("/")
    if not bucket:
        raise InvalidStoreURL(f"S3 URL names no bucket (s3://host:port/BUCKET): {shown!r}")
    options = _options(parts.query, url)
    secure = _parse_bool("secure", options.pop("secure", "false"))
    region = options.pop("region", "") or None
    try:
        part_size = int(float(options.pop("part_size_mb", "16")) * 1024 * 1024)
    except ValueError:
        raise InvalidStoreURL(f"S3 URL option part_size_mb is not a number: {shown!r}") from None
    if options:
        raise InvalidStoreURL(f"unknown S3 storage option(s): {', '.join(sorted(options))}")
    access_key = unquote(parts.username) if parts.username else None
    secret_key = unquote(parts.password) if parts.password else None
    if access_key and secret_key is None:
        raise InvalidStoreURL(f"S3 URL has an access key but no secret key: {shown!r}")
    try:
        return S3Store(
            endpoint,
            bucket,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            prefix=prefix,
            part_size=part_size,
        )
    except InvalidStoreURL:
        raise
    except ValueError as exc:  # minio validates the endpoint and bucket name
        raise InvalidStoreURL(f"S3 URL {shown!r} is not usable: {exc}") from None
