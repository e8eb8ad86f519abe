"""The vector index client: Milvus (a server) or milvus-lite (embedded, one process per path).

Milvus is a derived index: Postgres holds every face and its embedding, and the index can be
rebuilt from it at any time. So this module favours simple, idempotent operations:

- one collection per embedding model (``faces_<model>``), so vectors of different models
  never meet; each row is ``id`` (the face id, our primary key, not auto-generated),
  ``embedding`` (FLOAT_VECTOR), ``image_id`` and ``gallery_id``;
- a search sees one gallery only, enforced inside Milvus: every search carries the filter
  ``gallery_id == <id>``. Collections made here declare ``gallery_id`` the partition key, so
  a Milvus server prunes to the gallery's partition; milvus-lite hashes galleries into 16
  buckets, so two galleries can share one. Collections made before the partition key keep
  working with the filter alone. A filtered approximate search can still come back short
  (milvus-lite's HNSW skips filtered-out rows during its graph walk and may find none of a
  small gallery's faces); such a query is answered by an exact scan of the gallery's
  vectors, so a gallery of at least ``top_k`` faces always gives ``top_k`` hits;
- ``upsert`` by face id (re-indexing a face is harmless), in chunks; deletes by id, one call
  per chunk of ids (``id in [...]``). No flush on a Milvus server: it persists data by itself
  and every flush seals small segments (FACTS: >= 0.5 s each, even with nothing to flush).
  milvus-lite (embedded, or its server) is flushed after each write: unflushed rows are
  brute-forced on every search (FACTS: ~870 ms vs ~85 ms at 20k rows), and a flushed single
  writer survived SIGKILL (``core.milvus_lite`` says which backend is which);
- every read names an alias, ``faces_<model>_live``, never a collection: a rebuild fills a new
  collection (``faces_<model>_v<N>``, reachable meanwhile as ``faces_<model>_next``, which
  every write also reaches), then moves the alias in one atomic call and drops the old
  collection, so searches answer from a complete collection throughout
  (:meth:`VectorIndex.begin_rebuild`, :meth:`VectorIndex.finish_rebuild`). A collection made
  before aliases (named ``faces_<model>``) is put behind the alias on first use, as it is;
- consistency: reads ask for Session consistency. A Milvus server then waits only for this
  process's own writes (read-your-writes for the writer, the rebuild and the tests), and a
  search from another process is served at once from what the server has applied, normally
  within a time tick (~200 ms) of the write. Strong would make every search wait for the
  next time tick: measured on Milvus 2.3.5 at 397 ms p50 a search against 1.9 ms for
  Session. Two writes wait for the server with one Strong read each: a delete (an erasure is
  done when no search can see the vectors; Session reads did not wait for deletes on 2.3.5)
  and a rebuild's switch (the new collection answers for every row written to it).
  milvus-lite has no lag to wait for;
- metric IP on L2-normalised vectors, i.e. cosine similarity: higher is more similar. The
  client normalises what it stores and what it searches, so the score means cosine whatever
  the caller passed.

pymilvus is imported lazily (about 0.5-0.9 s and a logging config of its own), so the web
process, which never searches, does not pay for it. The connection opens on first use; call
:meth:`VectorIndex.close` to release it. An embedded (milvus-lite) index may be open in only
one process at a time; several processes must share a Milvus server instead
(``milvus-lite server --data-dir DIR --host 127.0.0.1 --port N`` and ``http://127.0.0.1:N``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from core import milvus_lite

if TYPE_CHECKING:
    from pymilvus import MilvusClient

__all__ = ["Hit", "VectorIndex", "VectorIndexError"]

log = logging.getLogger(__name__)

_SERVER_PREFIXES = ("http://", "https://", "tcp://", "unix:")
# Field names of every collection this module makes.
_ID, _VECTOR, _IMAGE, _GALLERY = "id", "embedding", "image_id", "gallery_id"
# Rows per insert RPC: FACTS measured ~7,000 rows/s at 2,000 a batch; it also keeps one
# request far below gRPC's message limit (2,000 x 512 floats = 4 MB).
_CHUNK_ROWS = 2000
_MAX_TOP_K = 16384  # Milvus's limit on `limit`
# Rows per page when a gallery's vectors are scanned exactly (see VectorIndex.search): 2,000 x
# 512 floats is 4 MB a page, and a page comes back as Python lists, so keep it modest.
_SCAN_PAGE = 2000
_SCAN_WARN_ROWS = 100_000  # an exact scan this large is slow enough to be worth a warning
_MAX_NAME = 255  # Milvus's limit on collection names
# Suffixes of a model's names: the alias reads use, the alias of a collection being rebuilt,
# and the versions of its collection; the stem leaves room for the longest of them.
_LIVE, _NEXT = "_live", "_next"
_VERSION = re.compile(r"_v(\d{1,6})$")
_SUFFIX_ROOM = 8
_READ = "Session"  # the consistency of searches and queries (see the module's docstring)
_INDEX_TYPES = ("HNSW", "FLAT", "IVF_FLAT", "AUTOINDEX")
_COLLECTION_NOT_FOUND = 100  # pymilvus.exceptions.ErrorCode.COLLECTION_NOT_FOUND


class VectorIndexError(RuntimeError):
    """The vector index failed or refused; the message says why in plain words."""


@dataclass(frozen=True)
class Hit:
    face_id: int
    score: float  # cosine similarity (inner product of L2-normalised vectors); higher is closer
    image_id: int


def _import_pymilvus() -> Any:
    """Import pymilvus on first use and route its log records through the app's logging.

    pymilvus installs its own stderr handlers (propagate=False) at import; that bypasses the
    structured logging the rest of the app configures, so hand its records back to the root.
    """
    # pymilvus reads MILVUS_URI from the environment at import time for a default connection
    # and raises ConnectionConfigException on anything but an http(s) URI. Our setting of the
    # same name may be a milvus-lite path, and we pass the URI explicitly: hide it meanwhile.
    hidden = os.environ.pop("MILVUS_URI", None)
    try:
        import pymilvus  # noqa: PLC0415  (slow import: only processes that index pay for it)
    finally:
        if hidden is not None:
            os.environ["MILVUS_URI"] = hidden

    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
        lg = logging.getLogger(name)
        if getattr(lg, "_facesearch_tamed", False):
            continue
        for handler in list(lg.handlers):
            lg.removeHandler(handler)
        lg.propagate = True
        lg.setLevel(logging.WARNING)
        lg._facesearch_tamed = True  # type: ignore[attr-defined]
    return pymilvus


def _display_uri(uri: str) -> str:
    """``uri`` without a user:password part."""
    if not uri.startswith(_SERVER_PREFIXES) or uri.startswith("unix:"):
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class VectorIndex:
    """A Milvus / milvus-lite index of face embeddings, one collection per model.

    Thread-safe for the usual use (one object shared by a worker's threads): pymilvus's
    client is, and the lazy connection and the per-collection cache are guarded by a lock.
    Open it after forking (the lazy connection does that by itself): a gRPC channel does not
    survive ``fork``.
    """

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        index_type: str = "HNSW",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        search_ef: int = 512,
        ivf_nlist: int = 1024,
        ivf_nprobe: int = 32,
        connect_timeout: float = 10.0,
    ) -> None:
        if not uri:
            raise VectorIndexError("no Milvus URI given (a milvus-lite path or http://host:port)")
        index_type = index_type.upper()
        if index_type not in _INDEX_TYPES:
            raise VectorIndexError(
                f"index type {index_type!r} is not supported; use one of {', '.join(_INDEX_TYPES)}"
            )
        self.uri = uri
        self.token = token
        self.index_type = index_type
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.search_ef = search_ef
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
        self.connect_timeout = connect_timeout
        self.embedded = not uri.startswith(_SERVER_PREFIXES)
        self._data_dir = Path(uri).expanduser().absolute() if self.embedded else None
        self._client: MilvusClient | None = None
        self._pid = 0
        self._lock = threading.RLock()
        self._dims: dict[str, int] = {}  # collections known to exist, loaded, with their dim
        self._built: dict[str, str] = {}  # their index type (search params follow the index)
        self._lite: bool | None = None  # milvus-lite (embedded or its server): known on connect
        self._split_upsert = False  # a server whose upsert misroutes rows (_upsert_misroutes)

    def __repr__(self) -> str:
        return f"VectorIndex({self.display_uri!r}, index_type={self.index_type!r})"

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def display_uri(self) -> str:
        return str(self._data_dir) if self._data_dir is not None else _display_uri(self.uri)

    # ------------------------------------------------------------------ naming

    @staticmethod
    def collection_name(model_name: str) -> str:
        """The name the model's vectors are read and written by: an alias of the model's
        current collection (``faces_<model>_live``).

        The model name has anything outside ``[a-zA-Z0-9_]`` made ``_``. Sanitising can map
        two names to one ("a-b", "a.b"), which would put two models' vectors in one
        collection; so when it changed anything, a short hash of the real name is appended.
        Over-long names are cut and hashed the same way.
        """
        return _stem(model_name) + _LIVE

    @staticmethod
    def building_name(model_name: str) -> str:
        """The alias of the collection a rebuild is filling, while one is."""
        return _stem(model_name) + _NEXT

    # ------------------------------------------------------------------ connection

    def _connect(self) -> MilvusClient:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                return self._client
            if self._client is not None:  # inherited across fork: unusable, not ours to close
                self._client = None
                self._dims.clear()
            pymilvus = _import_pymilvus()
            uri = self._acquire_embedded() if self.embedded else self.uri
            try:
                client = pymilvus.MilvusClient(
                    uri=uri,
                    token=self.token or "",
                    timeout=self.connect_timeout,
                    # Our own channel: close() then really closes it (a shared one lingers).
                    dedicated=True,
                )
                version = client.get_server_version()
                # milvus-lite behind a URL (its server) needs what embedded milvus-lite needs.
                self._lite = self.embedded or milvus_lite.is_lite(version)
                self._split_upsert = _upsert_misroutes(version)
            except pymilvus.MilvusException as exc:
                if self._data_dir is not None:
                    milvus_lite.release(self._data_dir)
                raise VectorIndexError(
                    f"cannot connect to Milvus at {self.display_uri}: {exc.message}"
                ) from exc
            self._client = client
            self._pid = os.getpid()
            return client

    @property
    def lite(self) -> bool:
        """Whether the index is milvus-lite (embedded or its server): flushed after writes."""
        self._connect()
        return bool(self._lite)

    def _acquire_embedded(self) -> str:
        assert self._data_dir is not None
        try:
            return milvus_lite.acquire(self._data_dir)
        except milvus_lite.EmbeddedIndexError as exc:
            raise VectorIndexError(str(exc)) from exc

    def close(self) -> None:
        """Release the connection (and for milvus-lite the path's lock). Safe to call twice."""
        with self._lock:
            client, self._client = self._client, None
            self._dims.clear()
            if client is None or self._pid != os.getpid():
                return
            try:
                client.close()
            except Exception:  # closing must not fail the caller's shutdown
                log.warning("closing the Milvus client failed", exc_info=True)
            if self._data_dir is not None:
                milvus_lite.release(self._data_dir)

    @contextlib.contextmanager
    def _errors(self, action: str, collection: str | None = None) -> Iterator[None]:
        from pymilvus import MilvusException  # noqa: PLC0415  (already imported by _connect)

        try:
            yield
        except MilvusException as exc:
            where = f" on {collection}" if collection else ""
            raise VectorIndexError(
                f"Milvus {action}{where} failed at {self.display_uri}: {exc.message}"
            ) from exc

    @contextlib.contextmanager
    def _forget_on_error(self, *names: str) -> Iterator[None]:
        """On failure, forget what we cached about ``names``: the next call looks again (and
        re-creates the collection if another process dropped it)."""
        try:
            yield
        except BaseException:
            with self._lock:
                for name in names:
                    self._dims.pop(name, None)
            raise

    def check(self) -> None:
        """Readiness: connect (or start milvus-lite) and list collections."""
        client = self._connect()
        with self._errors("readiness check"):
            client.list_collections()

    # ------------------------------------------------------------------ collections

    def _index_params(self, client: MilvusClient) -> Any:
        params: dict[str, Any] = {}
        if self.index_type == "HNSW":
            params = {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction}
        elif self.index_type == "IVF_FLAT":
            params = {"nlist": self.ivf_nlist}
        index_params = client.prepare_index_params()
        index_params.add_index(
            field_name=_VECTOR, index_type=self.index_type, metric_type="IP", params=params
        )
        return index_params

    def _search_params(self, index_type: str, top_k: int) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if index_type == "HNSW":
            params = {"ef": max(self.search_ef, top_k)}  # HNSW needs ef >= k
        elif index_type == "IVF_FLAT":
            params = {"nprobe": self.ivf_nprobe}
        return {"metric_type": "IP", "params": params}

    def _existing_dim(self, client: MilvusClient, name: str) -> int:
        with self._errors("describe", name):
            info = client.describe_collection(name)
        fields = {f["name"]: f for f in info.get("fields", [])}
        wanted = {_ID, _VECTOR, _IMAGE, _GALLERY}
        if not wanted <= fields.keys() or "dim" not in fields[_VECTOR].get("params", {}):
            raise VectorIndexError(
                f"collection {name} exists with an unexpected schema (fields: "
                f"{', '.join(sorted(fields))}); drop it and rebuild the index from the database"
            )
        if not fields[_GALLERY].get("is_partition_key"):
            log.info(
                "collection %s predates the gallery partition key: searches still see only "
                "their gallery (a filter), without partition pruning; rebuild the index "
                "(facesearch reindex) to add it",
                name,
            )
        return int(fields[_VECTOR]["params"]["dim"])

    def _make_ready(self, client: MilvusClient, name: str) -> str:
        """Give the collection its index if it lacks one, and load it (once per connection).

        Returns the type of the index it has, which may differ from the configured one.
        """
        built = self.index_type
        with self._errors("prepare", name):
            indexes = client.list_indexes(name, field_name=_VECTOR)
            if not indexes:  # new, or a crash between create_collection and create_index
                # sync=False: the index of an empty collection needs no build to wait for, and
                # pymilvus's wait polls every 0.5 s with an RPC milvus-lite does not implement.
                try:
                    client.create_index(name, self._index_params(client), sync=False)
                except Exception:
                    if not client.list_indexes(name, field_name=_VECTOR):
                        raise  # not another process's index racing ours: a real failure
            else:
                info = client.describe_index(name, index_name=indexes[0]) or {}
                built = str(info.get("index_type") or self.index_type).upper()
                if built != self.index_type:
                    log.warning(
                        "collection %s has a %s index, configured %s; rebuild the index "
                        "(facesearch reindex) to change it",
                        name,
                        built,
                        self.index_type,
                    )
            state = client.get_load_state(name).get("state")
            if getattr(state, "name", str(state)) != "Loaded":
                client.load_collection(name)
        return built

    def _known_dim(self, client: MilvusClient, name: str) -> int | None:
        """The dim of collection (or alias) ``name`` if it exists (making it ready on first
        sight), else None."""
        with self._lock:
            if name in self._dims:
                return self._dims[name]
            with self._errors("lookup", name):
                if not client.has_collection(name):
                    return None
            dim = self._existing_dim(client, name)
            self._built[name] = self._make_ready(client, name)
            self._dims[name] = dim
            return dim

    def _live_dim(self, client: MilvusClient, model_name: str) -> int | None:
        """The dim of the model's live collection, or None when it has none yet.

        A collection made before aliases (``faces_<model>``, read by its own name) is put
        behind the alias here, as it is: one call, and nothing moves.
        """
        alias = self.collection_name(model_name)
        dim = self._known_dim(client, alias)
        if dim is not None:
            return dim
        legacy = _stem(model_name)
        with self._lock, self._errors("alias", legacy):
            if client.has_collection(legacy) and not client.has_collection(alias):
                try:
                    client.create_alias(legacy, alias)
                except Exception:
                    if not client.has_collection(alias):
                        raise  # not another process adopting it at the same moment
                log.info("collection %s is now read as %s", legacy, alias)
        return self._known_dim(client, alias)

    def _create(self, client: MilvusClient, name: str, dim: int) -> None:
        """Create collection ``name`` with our schema and index, loaded. Another process
        creating it at the same moment is fine."""
        pymilvus = _import_pymilvus()
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(_ID, pymilvus.DataType.INT64, is_primary=True)
        schema.add_field(_VECTOR, pymilvus.DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(_IMAGE, pymilvus.DataType.INT64)
        # The partition key: a Milvus server turns a search's gallery filter into
        # a partition prune; milvus-lite hashes galleries into buckets of segments.
        schema.add_field(_GALLERY, pymilvus.DataType.INT64, is_partition_key=True)
        try:
            client.create_collection(name, schema=schema, consistency_level=_READ)
        except pymilvus.MilvusException as exc:
            if not client.has_collection(name):
                raise VectorIndexError(
                    f"cannot create collection {name} at {self.display_uri}: {exc.message}"
                ) from exc
        log.info("created collection %s (dim %d, %s, IP)", name, dim, self.index_type)
        self._known_dim(client, name)

    def _versions(self, client: MilvusClient, model_name: str) -> list[str]:
        """The model's collections (not aliases), the legacy one included, oldest first."""
        stem = _stem(model_name)
        with self._errors("list", stem):
            names = client.list_collections()

        def version(name: str) -> int:
            match = _VERSION.search(name)
            return int(match.group(1)) if match else 0

        mine = [
            n
            for n in names
            if n == stem or (n.startswith(stem) and _VERSION.fullmatch(n[len(stem) :]))
        ]
        return sorted(mine, key=version)

    def _new_version(self, client: MilvusClient, model_name: str, dim: int) -> str:
        existing = self._versions(client, model_name)
        match = _VERSION.search(existing[-1]) if existing else None
        name = f"{_stem(model_name)}_v{int(match.group(1)) + 1 if match else 1}"
        self._create(client, name, dim)
        return name

    def ensure_collection(self, model_name: str, dim: int) -> None:
        """Create the model's collection (with its index, loaded, behind the alias reads
        use) unless it exists.

        Idempotent. An existing collection of another dimension is refused: that is another
        model's vectors, or a model changed under the same name.
        """
        if dim <= 0:
            raise ValueError("dim must be positive")
        alias = self.collection_name(model_name)
        client = self._connect()
        with self._lock:
            existing = self._live_dim(client, model_name)
            if existing is None:
                name = self._new_version(client, model_name, dim)
                with self._errors("alias", name):
                    try:
                        client.create_alias(name, alias)
                    except Exception:
                        if not client.has_collection(alias):
                            raise
                        # Another process made the model's first collection at the same
                        # moment: read theirs, drop ours (empty).
                        client.drop_collection(name)
                existing = self._known_dim(client, alias)
            if existing != dim:
                raise VectorIndexError(
                    f"collection {alias} holds {existing}-d vectors, not {dim}-d: a different "
                    "model (or model version) under the same name; drop it and re-index, or "
                    "use another model name"
                )

    def drop(self, model_name: str) -> None:
        """Drop the model's aliases and collections (and their data); missing ones are fine."""
        client = self._connect()
        with self._lock, self._errors("drop", _stem(model_name)):
            for alias in (self.collection_name(model_name), self.building_name(model_name)):
                self._dims.pop(alias, None)
                if client.has_collection(alias):
                    client.drop_alias(alias)  # before its collection: Milvus 2.4+ insists
            for name in self._versions(client, model_name):
                self._dims.pop(name, None)
                client.drop_collection(name)

    def count(self, model_name: str) -> int:
        """Rows in the model's collection (0 if it does not exist); exact, not an estimate."""
        name = self.collection_name(model_name)
        client = self._connect()
        if self._live_dim(client, model_name) is None:
            return 0
        return self._count(client, name, "")

    def _count(self, client: MilvusClient, name: str, expr: str) -> int:
        with self._errors("count", name), self._forget_on_error(name):
            rows = client.query(
                name, filter=expr, output_fields=["count(*)"], consistency_level=_READ
            )
        return int(rows[0]["count(*)"]) if rows else 0

    # ------------------------------------------------------------------ data

    def _targets(self, client: MilvusClient, model_name: str) -> list[str]:
        """Where writes go: the live collection, and the one a rebuild is filling, if any.

        Asked of Milvus on every write (one cheap call per batch): a rebuild may have
        started in another process since the last one.
        """
        building = self.building_name(model_name)
        with self._errors("lookup", building):
            rebuilding = client.has_collection(building)
        return [self.collection_name(model_name), *([building] if rebuilding else [])]

    def _rows(
        self,
        face_ids: Sequence[int],
        vectors: np.ndarray,
        image_ids: Sequence[int],
        gallery_ids: Sequence[int],
    ) -> list[dict[str, Any]]:
        """Validated rows, normalised, one per face id (a face id given twice: the last)."""
        n = len(face_ids)
        if len(image_ids) != n or len(gallery_ids) != n:
            raise ValueError("face_ids, image_ids and gallery_ids must have the same length")
        matrix = _as_matrix(vectors, n)
        if n == 0:
            return []
        matrix = _normalised(matrix, "stored")
        last = {int(face_id): i for i, face_id in enumerate(face_ids)}  # dedup: last one wins
        return [
            {
                _ID: int(face_ids[i]),
                _VECTOR: matrix[i],
                _IMAGE: int(image_ids[i]),
                _GALLERY: int(gallery_ids[i]),
            }
            for i in last.values()
        ]

    def _write(
        self, client: MilvusClient, names: Sequence[str], rows: list[dict[str, Any]]
    ) -> None:
        for name in names:
            with self._errors("upsert", name), self._forget_on_error(name):
                for start in range(0, len(rows), _CHUNK_ROWS):
                    chunk = rows[start : start + _CHUNK_ROWS]
                    if self._split_upsert:
                        client.delete(name, ids=[row[_ID] for row in chunk])
                        client.insert(name, chunk)
                    else:
                        client.upsert(name, chunk)
                if self._lite:
                    client.flush(name)

    def _remove(self, client: MilvusClient, names: Sequence[str], ids: list[int]) -> None:
        for name in names:
            with self._errors("delete", name), self._forget_on_error(name):
                for start in range(0, len(ids), _CHUNK_ROWS):
                    client.delete(name, ids=ids[start : start + _CHUNK_ROWS])  # id in [...]
                if self._lite:
                    client.flush(name)
                else:
                    # An erasure is done when no search can see the vectors: one Strong read
                    # waits until the server has applied the deletes (a time tick, ~0.2-0.4 s
                    # per call, not per id). Session reads do not wait for deletes (measured
                    # on Milvus 2.3.5: a Session count still saw deleted rows).
                    self._barrier(client, name)

    def upsert(
        self,
        model_name: str,
        *,
        face_ids: Sequence[int],
        vectors: np.ndarray,
        image_ids: Sequence[int],
        gallery_ids: Sequence[int],
    ) -> None:
        """Insert or replace faces by id, in the live collection and in the one a rebuild is
        filling. Creates the collection if needed. A face id given twice keeps its last row.
        """
        rows = self._rows(face_ids, vectors, image_ids, gallery_ids)
        if not rows:
            return
        self.ensure_collection(model_name, len(rows[0][_VECTOR]))
        client = self._connect()
        self._write(client, self._targets(client, model_name), rows)

    def delete(self, model_name: str, face_ids: Sequence[int]) -> None:
        """Remove faces by id from the live collection and from the one a rebuild is filling
        (missing ids and a missing collection are fine)."""
        ids = sorted({int(i) for i in face_ids})
        if not ids:
            return
        client = self._connect()
        if self._live_dim(client, model_name) is None:
            return
        self._remove(client, self._targets(client, model_name), ids)

    # ------------------------------------------------------------------ rebuilds

    def begin_rebuild(self, model_name: str, dim: int) -> str:
        """Start (or resume) filling a new collection for the model; its name.

        The new collection (the next version, with its index, loaded) gets the building
        alias, so every write from now on reaches it as well as the live one; fill it with
        :meth:`upsert_into`, then :meth:`finish_rebuild`. A rebuild already in progress of
        the same dimension is resumed (writes have kept it up to date), not started again.
        """
        if dim <= 0:
            raise ValueError("dim must be positive")
        building = self.building_name(model_name)
        client = self._connect()
        with self._lock:
            self._live_dim(client, model_name)  # adopt a collection made before aliases
            with self._errors("alias", building):
                if client.has_collection(building):
                    name = str(client.describe_alias(building)["collection_name"])
                    if self._known_dim(client, name) == dim:
                        return name
                    client.drop_alias(building)  # a rebuild for another model version
                    client.drop_collection(name)
                    self._dims.pop(name, None)
                name = self._new_version(client, model_name, dim)
                client.create_alias(name, building)
            self._dims.pop(building, None)
        log.info("rebuild of %s started in %s", self.collection_name(model_name), name)
        return name

    def upsert_into(
        self,
        collection: str,
        *,
        face_ids: Sequence[int],
        vectors: np.ndarray,
        image_ids: Sequence[int],
        gallery_ids: Sequence[int],
    ) -> None:
        """Insert or replace faces in ``collection`` only (a rebuild filling its collection)."""
        rows = self._rows(face_ids, vectors, image_ids, gallery_ids)
        if rows:
            self._write(self._connect(), [collection], rows)

    def delete_from(self, collection: str, face_ids: Sequence[int]) -> None:
        """Remove faces from ``collection`` only (what a rebuild copied after it was erased)."""
        ids = sorted({int(i) for i in face_ids})
        if ids:
            self._remove(self._connect(), [collection], ids)

    def finish_rebuild(self, model_name: str, collection: str) -> None:
        """Make ``collection`` the live one (the alias moves in one call), then drop the
        building alias and every other collection of the model. Idempotent."""
        alias, building = self.collection_name(model_name), self.building_name(model_name)
        client = self._connect()
        with self._lock, self._errors("switch", collection):
            if not self._lite:
                # The server has applied every write to the collection, so it answers for
                # all of them from its first search under the alias.
                self._barrier(client, collection)
            if client.has_collection(alias):
                client.alter_alias(collection, alias)
            else:
                client.create_alias(collection, alias)
            if client.has_collection(building):
                client.drop_alias(building)
            for name in self._versions(client, model_name):
                if name != collection:
                    client.drop_collection(name)
            self._dims.clear()
        log.info("%s now reads %s", alias, collection)

    @staticmethod
    def _barrier(client: MilvusClient, name: str) -> None:
        """Return once the server has applied every write made to ``name`` so far: a Strong
        read waits for that (one time tick)."""
        client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")

    def live_collection(self, model_name: str) -> str | None:
        """The collection behind the model's alias (None if it has none yet)."""
        client = self._connect()
        if self._live_dim(client, model_name) is None:
            return None
        with self._errors("lookup", self.collection_name(model_name)):
            return str(client.describe_alias(self.collection_name(model_name))["collection_name"])

    def search(
        self, model_name: str, vectors: np.ndarray, top_k: int, *, gallery_id: int
    ) -> list[list[Hit]]:
        """The ``top_k`` nearest faces of gallery ``gallery_id`` to each query vector, best
        first.

        Only that gallery's faces are ever seen: Milvus is asked with the filter
        ``gallery_id == <id>`` (a partition prune on a server where the collection has the
        partition key). A gallery with at least ``top_k`` faces gives exactly ``top_k`` hits:
        where the approximate search under the filter comes back short (milvus-lite's HNSW
        can miss a small gallery's faces entirely), that query is answered by an exact scan
        of the gallery's vectors.

        One list per query row (a 1-D vector is one query). An empty or missing collection
        gives empty lists. Only id, score and image_id come back (not the stored vectors).
        """
        if not 1 <= top_k <= _MAX_TOP_K:
            raise ValueError(f"top_k must be between 1 and {_MAX_TOP_K}")
        expr = _gallery_filter(gallery_id)
        matrix = _as_matrix(vectors, None)
        if matrix.shape[0] == 0:
            return []
        name = self.collection_name(model_name)
        client = self._connect()
        dim = self._live_dim(client, model_name)
        if dim is None:
            return [[] for _ in range(matrix.shape[0])]
        if matrix.shape[1] != dim:
            raise VectorIndexError(
                f"query vectors are {matrix.shape[1]}-d but collection {name} holds {dim}-d"
            )
        matrix = _normalised(matrix, "searched")
        from pymilvus import MilvusException  # noqa: PLC0415  (imported by _connect already)

        try:
            results = client.search(
                name,
                data=matrix,
                limit=top_k,
                filter=expr,
                output_fields=[_IMAGE],
                search_params=self._search_params(self._built.get(name, self.index_type), top_k),
                anns_field=_VECTOR,
                consistency_level=_READ,
            )
        except MilvusException as exc:
            if exc.code == _COLLECTION_NOT_FOUND:  # dropped by another process since cached
                with self._lock:
                    self._dims.pop(name, None)
                return [[] for _ in range(matrix.shape[0])]
            raise VectorIndexError(
                f"Milvus search on {name} failed at {self.display_uri}: {exc.message}"
            ) from exc
        hits = [
            [
                Hit(
                    face_id=int(hit["id"]),
                    score=float(hit["distance"]),
                    image_id=int(hit["entity"][_IMAGE]),
                )
                for hit in found
            ]
            for found in results
        ]
        if any(len(found) < top_k for found in hits):
            self._fill_short(client, name, matrix=matrix, hits=hits, top_k=top_k, expr=expr)
        return hits

    def _fill_short(
        self,
        client: MilvusClient,
        name: str,
        *,
        matrix: np.ndarray,
        hits: list[list[Hit]],
        top_k: int,
        expr: str,
    ) -> None:
        """Replace, in place, the answers that came back with fewer than ``top_k`` hits
        although the gallery holds more faces, by an exact scan of the gallery's vectors.

        A filtered approximate search may come back short: milvus-lite's HNSW skips
        filtered-out rows while it walks the graph, so a query far from a small gallery's
        faces can exhaust its search list among other galleries' rows and return few hits or
        none. Only such a gallery pays for the scan (its size, not the collection's); a
        gallery smaller than ``top_k`` costs one count.
        """
        total = self._count(client, name, expr)
        with self._errors("search", name), self._forget_on_error(name):
            wanted = min(top_k, total)
            short = [i for i, found in enumerate(hits) if len(found) < wanted]
            if not short:
                return
            if total > _SCAN_WARN_ROWS:
                log.warning(
                    "filtered search on %s came back short; scanning %d vectors (%s) exactly",
                    name,
                    total,
                    expr,
                )
            exact = _ExactTopK(matrix[short], top_k)
            for page in self._pages(client, name, expr, total):
                exact.add(page)
        for i, found in zip(short, exact.hits(), strict=True):
            hits[i] = found

    def _pages(
        self, client: MilvusClient, name: str, expr: str, total: int
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows matching ``expr`` (id, vector, image id), a page at a time."""
        fields = [_ID, _VECTOR, _IMAGE]
        if total <= _SCAN_PAGE:
            yield client.query(
                name, filter=expr, output_fields=fields, limit=_SCAN_PAGE, consistency_level=_READ
            )
            return
        iterator = client.query_iterator(
            name, batch_size=_SCAN_PAGE, filter=expr, output_fields=fields, consistency_level=_READ
        )
        try:
            while page := iterator.next():
                yield page
        finally:
            iterator.close()


class _ExactTopK:
    """A running exact top-k (inner product, ties by id) of some queries over pages of rows."""

    def __init__(self, queries: np.ndarray, top_k: int) -> None:
        self.queries = queries
        self.top_k = top_k
        n = queries.shape[0]
        self.scores = np.empty((n, 0), np.float32)
        self.ids = np.empty((n, 0), np.int64)
        self.images = np.empty((n, 0), np.int64)

    def add(self, page: list[dict[str, Any]]) -> None:
        if not page:
            return
        vectors = np.asarray([row[_VECTOR] for row in page], dtype=np.float32)
        ids = np.asarray([int(row[_ID]) for row in page], np.int64)
        images = np.asarray([int(row[_IMAGE]) for row in page], np.int64)
        n = self.queries.shape[0]
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        all_ids = np.concatenate([self.ids, np.broadcast_to(ids, (n, ids.size))], axis=1)
        all_images = np.concatenate(
            [self.images, np.broadcast_to(images, (n, images.size))], axis=1
        )
        keep = np.lexsort((all_ids, -scores), axis=1)[:, : self.top_k]  # best first, ties by id
        self.scores = np.take_along_axis(scores, keep, axis=1)
        self.ids = np.take_along_axis(all_ids, keep, axis=1)
        self.images = np.take_along_axis(all_images, keep, axis=1)

    def hits(self) -> list[list[Hit]]:
        return [
            [
                Hit(face_id=int(face), score=float(score), image_id=int(image))
                for face, score, image in zip(ids, scores, images, strict=True)
            ]
            for ids, scores, images in zip(self.ids, self.scores, self.images, strict=True)
        ]


def _upsert_misroutes(server_version: str) -> bool:
    """Whether the server is a Milvus before 2.4, whose upsert into a collection with a
    partition key puts rows in the wrong partition (on 2.3.5, 5 of 300 upserted rows were
    found under their gallery's filter; inserted rows all were). There a write is a delete
    then an insert, which is not atomic: a face written again is missing from searches for
    that moment. The pinned pairing (Milvus 3.0) upserts."""
    match = re.match(r"v?(\d+)\.(\d+)\.", server_version.strip())
    return match is not None and (int(match.group(1)), int(match.group(2))) < (2, 4)


def _stem(model_name: str) -> str:
    """``faces_`` + the model name made safe; every name of the model's starts with it."""
    if not model_name or not model_name.strip():
        raise ValueError("model name must not be empty")
    clean = re.sub(r"[^a-zA-Z0-9_]", "_", model_name)
    name = f"faces_{clean}"
    room = _MAX_NAME - _SUFFIX_ROOM
    if clean != model_name or len(name) > room:
        digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
        name = f"{name[: room - 9]}_{digest}"
    return name


def _gallery_filter(gallery_id: int) -> str:
    """The Milvus filter expression for one gallery; only a real integer is interpolated."""
    if isinstance(gallery_id, bool) or not isinstance(gallery_id, int | np.integer):
        raise TypeError(f"gallery_id must be an int, not {type(gallery_id).__name__}")
    return f"{_GALLERY} == {int(gallery_id)}"


def _as_matrix(vectors: np.ndarray, rows: int | None) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 (n, d) matrix; a 1-D vector is one row."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1 and matrix.size:
        matrix = matrix.reshape(1, -1)
    if matrix.size == 0 and rows in (None, 0):
        return matrix.reshape(0, 0)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"vectors must be a 2-D (n, dim) array, got shape {matrix.shape}")
    if rows is not None and matrix.shape[0] != rows:
        raise ValueError(f"{matrix.shape[0]} vectors for {rows} ids")
    if not np.isfinite(matrix).all():
        raise ValueError("vectors contain NaN or infinity")
    return np.ascontiguousarray(matrix)


def _normalised(matrix: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to unit length, so inner product is cosine similarity."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"a zero vector cannot be {what}: it has no direction")
    return matrix / norms
