"""One typed settings object, read from the environment.

Every external part is chosen by a URL. The defaults are the embedded mode: SQLite, a
local folder for objects, milvus-lite and a broker that needs no server, all under
``DATA_DIR`` (``./var``), so ``make demo`` runs with nothing to install.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MEBIBYTE = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")

    # Each external part, chosen by a URL. Empty means "the embedded default under data_dir".
    database_url: str = ""
    broker_url: str = ""
    storage_url: str = ""
    milvus_uri: str = ""
    milvus_token: str | None = None

    # The index: HNSW keeps searches fast at millions of faces; FLAT is exact.
    milvus_index_type: Literal["HNSW", "FLAT", "IVF_FLAT", "AUTOINDEX"] = "HNSW"
    # HNSW's graph degree and build/search breadth. Measured on the real Milvus server
    # (docs/scale.md): at 1M faces M=16 gave recall@10 0.90 / 0.95 / 0.98 at ef 128 / 256 /
    # 512; M=32 lifts each (0.97 / 0.99 / 0.996 at 200k) for ~128 more bytes a face. M and
    # efConstruction shape a collection when it is built (`facesearch reindex` applies new
    # ones); ef applies to the next search.
    milvus_hnsw_m: int = Field(default=32, ge=4, le=64)
    milvus_hnsw_ef_construction: int = Field(default=200, ge=8, le=1024)
    milvus_search_ef: int = Field(default=512, ge=1, le=4096)

    # Face pipeline.
    model_name: str = "facenet-20170512-110547"
    model_dir: Path = Path.home() / ".cache" / "facesearch" / "models"
    pipeline_batch_size: int = Field(default=32, ge=1, le=512)
    max_faces_per_image: int = Field(default=20, ge=1, le=200)
    # Detect on a copy no longer than this (crops still come from the original). MTCNN's cost
    # grows with pixels: a 4000x3000 photo took 4.6 s and +1.2 GB in detection, 1000x750
    # 0.3 s. The price: in a 4000 px photo, faces under ~40 px are missed. 0 turns it off.
    detect_max_side: int = Field(default=2048, ge=0)
    # The face recipe (docs/tuning.md, README "Tuning the face path"): chosen on half of
    # LFW's identities, these defaults lifted rank-1 on all of LFW from 97.74 to 98.49%.
    # FACE_MARGIN, FACE_ALIGN and FACE_FLIP change the vectors (the embedding version, e.g.
    # facenet-20170512-110547+margin0.1+align+flip): changing one needs `facesearch
    # reembed`. The detection options change which faces are found, not their vectors.
    face_margin: float = Field(default=0.1, ge=0.0, le=2.0)  # of the box, on each side
    face_align: bool = True  # crop rotated so the eyes are level
    face_flip: bool = True  # a face's vector: its crop's and its mirror's, summed
    detect_min_confidence: float = Field(default=0.8, ge=0.0, le=1.0)  # MTCNN's ONet score
    # Images where nothing reaches DETECT_MIN_CONFIDENCE are detected again, enlarged.
    detect_second_pass: bool = True
    # Give the heap's free pages back to the OS after each batch (glibc's malloc_trim; see
    # core.memory): flat worker RSS, ~500 MB lower. Off only to compare.
    pipeline_release_memory: bool = True

    # Uploads. Limits are checked before any work is queued.
    max_upload_bytes: int = Field(default=20 * MEBIBYTE, ge=1)
    max_request_bytes: int = Field(default=200 * MEBIBYTE, ge=1)
    max_files_per_request: int = Field(default=100, ge=1)
    # Pillow's decompression-bomb guard: a 20 KB file can claim 50,000 x 50,000 pixels.
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    default_top_k: int = Field(default=10, ge=1, le=100)
    # An Idempotency-Key answers its retries with the job it made for this long (24 h), then
    # it may be used again for a new request.
    idempotency_key_ttl_s: int = Field(default=86_400, ge=1)

    # Tasks.
    task_time_limit_s: int = Field(default=900, ge=10)
    # Faces written per index task; FACTS: batches of ~2,000 insert at ~7,000 rows/s.
    index_batch_size: int = Field(default=2000, ge=1)
    # milvus-lite: at most one write (each is flushed) per this many seconds, in an index
    # process that serves no searches; faces arriving meanwhile join the next write.
    index_write_interval_s: float = Field(default=1.0, ge=0, le=60)
    # A killed worker's unacked task comes back after this many seconds (Redis). Empty: the
    # task time limit + 60 s. It must stay longer than any task runs, or a live task is
    # delivered twice.
    broker_visibility_timeout_s: int | None = Field(default=None, ge=1)
    # A task that meets a transient error (database, store or index away) is retried with
    # backoff (2 s doubling to 60 s between tries) for at least this long in all, longer than
    # a dependency's restart; then its job fails with the error.
    task_retry_for_s: int = Field(default=600, ge=0)
    # A task message delivered this many times without finishing (its worker killed by it each
    # time, or its time limit) is dead-lettered: its job fails with the reason.
    task_max_deliveries: int = Field(default=5, ge=1)

    # The reconciler (beat every `reconcile_interval_s`, or `facesearch reconcile`) re-queues
    # what is stranded: a job not updated for `reconcile_stale_s` (empty: the task time limit
    # + 120 s) is sent again, and a running one failed with the reason after
    # `reconcile_max_requeues` re-sends (a queued one may be waiting behind a backlog); an
    # image no live job will process is failed with the reason; faces not yet indexed are
    # indexed. At most `reconcile_batch` of each per run.
    reconcile_interval_s: int = Field(default=300, ge=10)
    reconcile_stale_s: int | None = Field(default=None, ge=1)
    reconcile_max_requeues: int = Field(default=3, ge=0)
    reconcile_batch: int = Field(default=500, ge=1)

    # Archives (POST /v1/archives). One archive task runs at most this long, then queues its
    # own continuation: tasks stay far below the time limit, whatever the archive's size.
    max_archive_bytes: int = Field(default=50 * 1024 * MEBIBYTE, ge=1)
    archive_task_budget_s: int = Field(default=300, ge=1)
    # Members recorded per commit while scanning an archive (what a kill can cost to redo).
    archive_scan_batch: int = Field(default=64, ge=1, le=10_000)
    # Where an archive is read while the model works: "process", a child process of the
    # worker (its Python does not wait for the model's GIL: on a thread, the worker used 0.8
    # of a core while it read, README Plumbing), or "thread", a thread of the worker.
    archive_reader: Literal["process", "thread"] = "process"
    # Tasks that share an archive's pipeline work once it is read (they never take the same
    # items): the number of pipeline worker processes, so that all of them are kept busy.
    archive_parallel_tasks: int = Field(default=1, ge=1, le=64)
    # An archive's entries (folders included) past this many are not read: the job keeps
    # the others and says why. A zip's central directory (which zipfile holds in memory, at
    # about 6x its size: 64 MiB is ~700,000 members with LFW-length names) over this many
    # bytes fails the job before any member is read: send so many files as a tar.
    max_archive_members: int = Field(default=1_000_000, ge=1)
    max_zip_directory_bytes: int = Field(default=64 * MEBIBYTE, ge=1)

    # Erasure and retention. Query photos and search results (with the webhook events about
    # them) are kept this many days, then purged by the beat task (`facesearch beat`) or
    # `facesearch purge`; checked every `retention_purge_interval_s`.
    search_retention_days: int = Field(default=30, ge=1)
    retention_purge_interval_s: int = Field(default=3600, ge=60)
    # Rows per transaction when erasing a gallery or purging searches; a gallery's erasure
    # task runs at most `erasure_task_budget_s`, then queues its own continuation.
    erasure_batch_size: int = Field(default=500, ge=1, le=10_000)
    erasure_task_budget_s: int = Field(default=300, ge=1)

    # Webhooks (POST /v1/webhooks, a search's callback_url). Destinations in private,
    # loopback, link-local or reserved ranges are refused unless listed here: comma-separated
    # host names, addresses or CIDRs (e.g. "127.0.0.1,10.1.0.0/16,hooks.internal").
    webhook_allowed_hosts: str = ""
    webhook_connect_timeout_s: float = Field(default=5.0, gt=0)
    webhook_read_timeout_s: float = Field(default=10.0, gt=0)
    # Attempts per delivery, and the first retry's delay: it doubles at each attempt (with
    # jitter), so 10 attempts from 45 s span about 6 h (workers/webhooks.py).
    webhook_max_attempts: int = Field(default=10, ge=1, le=30)
    webhook_retry_base_s: float = Field(default=45.0, ge=0)

    # At most this many subscriptions per gallery, and manual redeliveries per delivery (beyond
    # its WEBHOOK_MAX_ATTEMPTS automatic attempts).
    webhook_max_subscriptions: int = Field(default=25, ge=1)
    webhook_max_redeliveries: int = Field(default=20, ge=0)

    # Requests per API key (per client address for a request without one), e.g.
    # "1200/minute;50/second" (every limit applies). Empty: no limit. Counted in Redis (the
    # broker's, or RATE_LIMIT_STORAGE_URL) in server mode, in memory in the embedded mode.
    rate_limit: str = "1200/minute;50/second"
    rate_limit_storage_url: str = ""
    # Host names this API answers to (Host header), comma-separated, e.g. "api.example.org,
    # .example.org" (a leading dot: any subdomain). Empty: any host. Guards against DNS
    # rebinding.
    trusted_hosts: str = ""
    # Web origins allowed to call the API from a browser (CORS), comma-separated, e.g.
    # "https://app.example.org". Empty: no CORS headers at all.
    cors_origins: str = ""

    # Requests of one API process that may wait on a job at once (`Prefer: wait=N` on a
    # search, `GET /v1/jobs/{id}?wait=N`); one past it is answered at once, as if it had not
    # asked. It must leave threads for every other request: `facesearch serve` refuses it
    # unless it is at most its `--threads` less 16.
    api_max_waiters: int = Field(default=48, ge=0)

    # GET /metrics answers an admin key, or this token (for a Prometheus scraper that should
    # hold no key): `Authorization: Bearer <METRICS_TOKEN>`. Empty: admin keys only.
    metrics_token: str = ""

    # A worker serves its Prometheus metrics here (0: off). Loopback unless told otherwise.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # A second index worker waits this long for the first to let go of the index (a
    # redeploy's overlap), then refuses to start (workers.writer_lock).
    index_writer_lock_wait_s: float = Field(default=60.0, ge=0)
    # A worker that takes only bulk work (the ingest role) lowers its CPU priority by this
    # much (`nice`), so that on a shared machine the kernel runs a search first and the bulk
    # work gets every cycle the searches leave (0: off).
    ingest_worker_nice: int = Field(default=10, ge=0, le=19)

    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stderr is not a terminal

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        data = self.data_dir
        if not self.database_url:
            self.database_url = f"sqlite:///{(data / 'facesearch.db').resolve()}"
        if not self.broker_url:
            self.broker_url = f"filesystem://{(data / 'broker').resolve()}"
        if not self.storage_url:
            self.storage_url = f"file://{(data / 'objects').resolve()}"
        if not self.milvus_uri:
            self.milvus_uri = str((data / "milvus.db").resolve())
        return self

    @property
    def embedded_index(self) -> bool:
        """milvus-lite: only the worker process may open it (one process per path)."""
        return not self.milvus_uri.startswith(("http://", "https://", "tcp://", "unix:"))

    @property
    def stale_after_s(self) -> int:
        """How long a queued or running job may go without an update before it is stranded:
        longer than any task may run (its time limit), so a live task is never doubled."""
        return self.reconcile_stale_s or self.task_time_limit_s + 120

    @property
    def filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return Path(self.broker_url.removeprefix("filesystem://"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
