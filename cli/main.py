"""The ``facesearch`` command: one entry point for serving, working, set-up and the demo."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from cli.deploy import deploy as deploy_command
from cli.keys import galleries as galleries_command
from cli.keys import keys as keys_command
from cli.reembed import reembed as reembed_command
from cli.search import KEY_HELP
from cli.search import search as search_command
from cli.webhooks import webhooks as webhooks_command
from core.settings import get_settings
from workers.roles import ProcessSpec, Role

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Reverse face-image search: gallery ingest, search, jobs."""


# --- models ---------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """Face-embedding model weights."""


@models.command("pull")
@click.option("--model", "model_name", default=None, help="Model name (default: MODEL_NAME).")
def models_pull(model_name: str | None) -> None:
    """Download and verify the weights (cached in MODEL_DIR)."""
    from workers.pipeline.weights import WeightsError, pull  # noqa: PLC0415 (lazy: heavy)

    settings = get_settings()
    name = model_name or settings.model_name
    try:
        path = pull(name, settings.model_dir, progress=lambda msg: click.echo(msg, err=True))
    except WeightsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name}: {path}")


@models.command("list")
def models_list() -> None:
    """The models this build knows, and whether their weights are present."""
    from workers.pipeline.weights import MODELS, WeightsError, weights_path  # noqa: PLC0415

    settings = get_settings()
    for name, spec in MODELS.items():
        try:
            weights_path(name, settings.model_dir)
            state = "present"
        except WeightsError:
            state = "not pulled"
        default = " (default)" if name == settings.model_name else ""
        click.echo(f"{name}{default}: {spec.dim}-d, {state}")


# --- database -------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The database schema (Alembic migrations)."""


def alembic_config() -> object:
    """Alembic's config wherever the command runs from; the URL comes from DATABASE_URL."""
    from alembic.config import Config  # noqa: PLC0415

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


def run_migrations(url: str, action: str = "upgrade", revision: str = "heads") -> None:
    """Upgrade (or downgrade) the database at ``url`` in one transaction, leaving the
    caller's logging alone (tests and benchmarks call this in-process)."""
    from alembic import command  # noqa: PLC0415

    from models.db import make_engine  # noqa: PLC0415

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection  # type: ignore[attr-defined]
            config.attributes["configure_logger"] = False  # type: ignore[attr-defined]
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from sqlalchemy import text  # noqa: PLC0415

    from models.db import make_engine  # noqa: PLC0415

    settings = get_settings()
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    # In-process and without alembic.ini's logging set-up, which would bind the root logger
    # to whatever stderr is at this moment (a test runner's captured stream, later closed).
    run_migrations(settings.database_url, "upgrade", revision)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            heads = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        engine.dispose()
    click.echo(f"database migrated: revision {', '.join(sorted(heads))}")


# --- processes ------------------------------------------------------------------------


def _multiprocess_metrics() -> None:
    """Several processes (gunicorn workers, prefork children) share one /metrics through
    prometheus_client's multiprocess mode: a folder of their values, empty at start."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="facesearch-metrics-")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", "processes", default=2, show_default=True, type=int)
@click.option(
    "--threads",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Threads per process. Up to API_MAX_WAITERS of them may wait on jobs (Prefer: wait, "
    "?wait=N); at least 16 are kept for every other request.",
)
def serve(host: str, port: int, processes: int, threads: int) -> None:
    """Run the HTTP API under gunicorn."""
    # A thread that waits on a job sleeps on an event and holds no database connection:
    # threads are cheap, so each process has many, and the waiters may take only some of
    # them (README, "Answers without polling", measured by scripts/bench_waiters.py).
    free_threads = 16
    waiters = get_settings().api_max_waiters
    if waiters > threads - free_threads:
        raise click.UsageError(
            f"API_MAX_WAITERS={waiters} would leave fewer than {free_threads} of the "
            f"{threads} threads per process for other requests: lower it or raise --threads"
        )
    _multiprocess_metrics()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "api.wsgi:app",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(processes),
        "--threads",
        str(threads),
        "--timeout",
        "120",
        # No access log: the app writes one structured line per request (api/request_log.py).
    ]
    os.execvp(args[0], args)  # noqa: S606 (replaces this process by design)


@cli.command()
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=Role.AUTO.value,
    show_default=True,
    help="auto: one process per workload (search, ingest, io, index) as the mode needs; "
    "all: every queue in one process (searches then wait behind bulk work); "
    "or one role, for a deployment that runs each on its own.",
)
@click.option(
    "--queues",
    default=None,
    help="Consume exactly these comma-separated queues in one process (search, ingest, io, "
    "index) instead of a role's.",
)
@click.option(
    "--concurrency",
    default=None,
    type=int,
    help="Tasks at once (default: 1 with the model or the index, 8 threads for io).",
)
@click.option(
    "--pool",
    default=None,
    type=click.Choice(["solo", "prefork", "threads"]),
    help="Default: solo with the model or the index, threads for io.",
)
def worker(role: str, queues: str | None, concurrency: int | None, pool: str | None) -> None:
    """Run the workers: searches, bulk ingest, I/O (webhooks) and the index writer."""
    from workers.roles import WorkerConfigError, auto_layout, plan_process  # noqa: PLC0415

    settings = get_settings()
    chosen = Role(role)
    try:
        if chosen is Role.AUTO and not queues:
            if pool or concurrency:
                raise WorkerConfigError(
                    "--pool and --concurrency apply to one process: give --role or --queues"
                )
            from workers.supervisor import supervise  # noqa: PLC0415

            raise SystemExit(supervise(auto_layout(embedded_index=settings.embedded_index)))
        spec = plan_process(
            Role.ALL if chosen is Role.AUTO else chosen,
            queues=queues,
            pool=pool,
            concurrency=concurrency,
            embedded_index=settings.embedded_index,
        )
    except WorkerConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    _run_worker_process(spec)


def _run_worker_process(spec: ProcessSpec) -> None:
    settings = get_settings()
    writer_lock = None
    if spec.writes_index:
        from workers.runtime import get_engine  # noqa: PLC0415
        from workers.writer_lock import IndexWriterTakenError, acquire_writer_lock  # noqa: PLC0415

        try:
            # Held for the life of this process (its connection holds it).
            writer_lock = acquire_writer_lock(
                get_engine(), wait_s=settings.index_writer_lock_wait_s
            )
        except IndexWriterTakenError as exc:
            raise click.ClickException(str(exc)) from exc
    if spec.bulk_only and settings.ingest_worker_nice:
        # Searches run in another process on the same cores: let the kernel prefer them.
        os.nice(settings.ingest_worker_nice)
    if spec.pool == "prefork":
        _multiprocess_metrics()  # before the metrics module is imported below
    # Read by workers.celery_app: whether this process loads the face pipeline.
    os.environ["FACESEARCH_WORKER_QUEUES"] = ",".join(spec.queues)
    from workers.celery_app import celery_app  # noqa: PLC0415

    argv = [
        "worker",
        "--queues",
        ",".join(spec.queues),
        "--pool",
        spec.pool,
        "--loglevel",
        settings.log_level,
        "--without-gossip",
        "--without-mingle",
        # Named by role, so Flower and the logs tell the processes of one host apart.
        "--hostname",
        f"{spec.name.replace('+', '-')}@%h",
    ]
    if spec.concurrency and spec.pool != "solo":
        argv += ["--concurrency", str(spec.concurrency)]
    try:
        celery_app.worker_main(argv)
    finally:
        if writer_lock is not None:
            writer_lock.release()


@cli.command()
@click.option("--wait/--no-wait", default=False, help="Poll the job until it finishes.")
def reindex(wait: bool) -> None:
    """Rebuild the vector index from Postgres (queued to the index writer)."""
    from cli.follow import follow_job  # noqa: PLC0415
    from core.queue import REINDEX_TASK, make_celery  # noqa: PLC0415
    from models import DEFAULT_GALLERY_ID, Job, JobKind  # noqa: PLC0415
    from models.db import make_engine, make_session_factory, session_scope  # noqa: PLC0415

    settings = get_settings()
    sessions = make_session_factory(make_engine(settings.database_url))
    with session_scope(sessions) as session:
        # The index is every gallery's; the job is filed under the default gallery.
        job = Job(kind=JobKind.REINDEX, gallery_id=DEFAULT_GALLERY_ID)
        session.add(job)
        session.flush()
        job_id = job.id
    make_celery(settings).send_task(REINDEX_TASK, kwargs={"job_id": job_id})
    click.echo(f"reindex job {job_id} queued")
    if wait:
        follow_job(sessions, job_id, every_s=1)


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", envvar="FACESEARCH_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option(
    "--label-from",
    type=click.Choice(["folder", "filename", "none"]),
    default="folder",
    show_default=True,
    help="Where each image's label comes from (LFW: its folder).",
)
@click.option("--poll", "poll_s", default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--key", envvar="FACESEARCH_KEY", default=None, help=KEY_HELP)
def ingest(path: Path, url: str, label_from: str, poll_s: float, key: str | None) -> None:
    """Upload an archive (.tgz/.tar/.zip) through the API and follow its job to the end."""
    from cli.ingest import run  # noqa: PLC0415

    job = run(path, url=url, key=key, label_from=label_from, poll_s=poll_s)
    sys.exit(0 if job["status"] in ("succeeded", "partial") else 1)


@cli.command()
@click.option(
    "--archive",
    type=click.Path(path_type=Path),
    default=None,
    help="LFW archive (default: LFW_ARCHIVE or ../shared/lfw/lfw-deepfunneled.tgz).",
)
@click.option(
    "--images",
    "min_images",
    default=1000,
    show_default=True,
    help="Gallery size: whole identities in archive order until at least this many.",
)
@click.option("--query", default="Albert_Costa/Albert_Costa_0001.jpg", show_default=True)
def demo(archive: Path | None, min_images: int, query: str) -> None:
    """Embedded end to end: API + broker + worker, ingest LFW, search, print the top 10."""
    from cli.demo import run_demo  # noqa: PLC0415

    sys.exit(run_demo(archive=archive, min_images=min_images, query=query))


@cli.command("eval")
@click.option(
    "--archive",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="LFW archive (default: LFW_ARCHIVE or ../shared/lfw/lfw-deepfunneled.tgz).",
)
@click.option(
    "--pairs",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="LFW pairs.txt for 10-fold verification (default: beside the archive).",
)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    help="A named pipeline (repeatable; default: all): resnet50-knn, mtcnn-resnet50-knn, "
    "facenet-nodetect-knn, mtcnn-facenet-knn, mtcnn-facenet-milvus.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("docs"),
    show_default=True,
    help="Folder of the report: evaluation.md, evaluation.json and two PNGs.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Embedding cache, by image hash (default: DATA_DIR/eval-cache).",
)
@click.option(
    "--resnet50-weights",
    type=click.Path(path_type=Path),
    envvar="RESNET50_WEIGHTS",
    default=None,
    help="Keras ResNet50 ImageNet no-top weights (.h5); without it the ResNet50 rows are "
    "reported as not run.",
)
@click.option("--depth", default=100, show_default=True, help="Rank depth asked of the index.")
@click.option(
    "--tune",
    is_flag=True,
    help="Run the tuning harness instead (python -m evaluation.tuning; docs/tuning.json).",
)
@click.option(
    "--through-api",
    is_flag=True,
    help="Run the product's own path instead: ingest LFW into a fresh gallery through the API "
    "at --url and its workers, search with --queries random LFW images through POST "
    "/v1/searches, and print its figures beside the in-process harness's on the same "
    "queries (OUT/product-path.json).",
)
@click.option("--url", envvar="FACESEARCH_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option(
    "--key",
    envvar="FACESEARCH_KEY",
    default=None,
    help="With --through-api: an admin key for every gallery (FACESEARCH_KEY).",
)
@click.option("--queries", default=2000, show_default=True, help="With --through-api: queries.")
@click.option("--seed", default=0, show_default=True, help="With --through-api: query sample seed.")
@click.option(
    "--max-images",
    type=int,
    default=None,
    help="With --through-api: only the archive's first N images (default: all).",
)
@click.option(
    "--top-k", default=100, show_default=True, help="With --through-api: matches asked a search."
)
@click.option(
    "--resume",
    default=None,
    metavar="GALLERY:JOB",
    help="With --through-api: follow the ingest job of an earlier run that stopped (it prints "
    "both) instead of making a gallery and uploading again.",
)
def eval_command(
    *,
    archive: Path | None,
    pairs: Path | None,
    pipelines: tuple[str, ...],
    out_dir: Path,
    cache_dir: Path | None,
    resnet50_weights: Path | None,
    depth: int,
    tune: bool,
    through_api: bool,
    url: str,
    key: str | None,
    queries: int,
    seed: int,
    max_images: int | None,
    top_k: int,
    resume: str | None,
) -> None:
    """Measure retrieval quality on LFW: every pipeline, one report (Markdown, JSON, PNG)."""
    if through_api:
        from evaluation.command import run_through_api  # noqa: PLC0415 (lazy: TensorFlow)

        run_through_api(
            archive=archive,
            url=url,
            key=key,
            queries=queries,
            seed=seed,
            max_images=max_images,
            top_k=top_k,
            out_dir=out_dir,
            cache_dir=cache_dir,
            resume=resume,
        )
        return
    if tune:
        from evaluation.tuning import main as tune_main  # noqa: PLC0415 (lazy: TensorFlow)

        given = [("--archive", archive), ("--pairs", pairs), ("--reuse", cache_dir)]
        tune_main([str(v) for option, value in given if value for v in (option, value)])
        return
    from evaluation.command import run_eval  # noqa: PLC0415 (lazy: TensorFlow, matplotlib)

    run_eval(
        archive=archive,
        pairs=pairs,
        pipelines=list(pipelines),
        out_dir=out_dir,
        cache_dir=cache_dir,
        resnet50_weights=resnet50_weights,
        depth=depth,
    )


@cli.command()
@click.option(
    "--archive",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="LFW archive (default: LFW_ARCHIVE or ../shared/lfw/lfw-deepfunneled.tgz).",
)
@click.option(
    "--pairs",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="LFW pairs.txt (default: beside the archive).",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Embedding cache, shared with `facesearch eval` (default: DATA_DIR/eval-cache).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of the model's calibration, <model>.json (default: core/calibration/, "
    "where the API reads it).",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("docs/calibration.json"),
    show_default=True,
    help="The full report: held-out folds, reliability tables, operating points.",
)
def calibrate(
    *,
    archive: Path | None,
    pairs: Path | None,
    cache_dir: Path | None,
    out_dir: Path | None,
    report: Path,
) -> None:
    """Fit the same-person probability and verdicts of the product's model on LFW's pairs."""
    from evaluation.calibration_command import run  # noqa: PLC0415 (lazy: TensorFlow)

    run(archive=archive, pairs=pairs, cache_dir=cache_dir, out_dir=out_dir, report=report)


# --- retention ------------------------------------------------------------------------


@cli.command()
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Keep searches this many days (default: SEARCH_RETENTION_DAYS).",
)
def purge(days: int | None) -> None:
    """Purge searches past their retention: rows, query photos, webhook events about them."""
    from core.storage import open_store  # noqa: PLC0415
    from models.db import make_engine, make_session_factory  # noqa: PLC0415
    from workers.erasure import run_search_purge  # noqa: PLC0415

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        removed = run_search_purge(
            sessions=make_session_factory(engine),
            store=open_store(settings.storage_url),
            retention_days=days or settings.search_retention_days,
            batch_size=settings.erasure_batch_size,
        )
    finally:
        engine.dispose()
    click.echo(
        f"purged searches older than {days or settings.search_retention_days} days: "
        + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in removed.items())
    )


@cli.command()
def reconcile() -> None:
    """Re-queue or fail what is stranded (jobs without progress, images no job will process,
    faces not indexed), as the beat task does every RECONCILE_INTERVAL_S."""
    from models.db import make_engine, make_session_factory  # noqa: PLC0415
    from workers.celery_app import celery_app as app  # noqa: PLC0415
    from workers.celery_app import queue_deliveries, send_task  # noqa: PLC0415
    from workers.reconcile import reconcile as run  # noqa: PLC0415

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        report = run(
            sessions=make_session_factory(engine),
            send_task=send_task,
            send_deliveries=lambda ids: queue_deliveries(app, ids),
            stale_s=settings.stale_after_s,
            max_requeues=settings.reconcile_max_requeues,
            batch=settings.reconcile_batch,
        )
    finally:
        engine.dispose()
    click.echo("reconciled: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in report.items()))


@cli.command()
def beat() -> None:
    """Run Celery beat: it sends the periodic tasks (the retention purge, every
    RETENTION_PURGE_INTERVAL_S; the reconciler, every RECONCILE_INTERVAL_S). Run exactly one,
    beside the workers."""
    from workers.celery_app import celery_app  # noqa: PLC0415

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(
        [
            "beat",
            "--loglevel",
            settings.log_level,
            "--schedule",
            str((settings.data_dir / "celerybeat-schedule").resolve()),
        ]
    )


cli.add_command(search_command)
cli.add_command(webhooks_command)
cli.add_command(keys_command)
cli.add_command(galleries_command)
cli.add_command(deploy_command)
cli.add_command(reembed_command)


if __name__ == "__main__":
    cli()
