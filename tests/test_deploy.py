"""What the compose services run, run here without containers.

- Every command line in docker-compose.yml parses with the `facesearch` command it names.
- The GPU check fails on this machine (no GPU) with its message, and runs nothing after it.
- deploy/postgres/init-roles.sh against a real Postgres (a scratch database and roles on
  127.0.0.1:5432): migrations as the owner, the app's own commands and requests as the app
  role, and what the app role must not be able to do, refused by Postgres.
- deploy/minio/init.sh with a recording `mc`, and deploy/minio/app-policy.json on an S3
  server that enforces IAM policies (moto, in a process of its own on 127.0.0.1): the app's
  store works in its bucket and nowhere else.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from PIL import Image as PILImage
from sqlalchemy.engine import make_url

from cli.deploy import NO_GPU
from cli.main import cli, run_migrations
from core.settings import Settings, get_settings
from tests.conftest import PG_ADMIN_URL, make_client
from tests.test_compose import (
    COMPOSE_FILE,
    EXAMPLE_ENV,
    _command,
    _normalise,
    _requirements,
    interpolate,
    read_env_file,
)

ROOT = Path(__file__).resolve().parents[1]
ROLES_SCRIPT = ROOT / "deploy" / "postgres" / "init-roles.sh"
MINIO_INIT = ROOT / "deploy" / "minio" / "init.sh"
MINIO_POLICY = ROOT / "deploy" / "minio" / "app-policy.json"


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return interpolate(document, read_env_file(EXAMPLE_ENV))["services"]


# --- entrypoints ---------------------------------------------------------------------------------


def _facesearch_commands(service: dict[str, Any]) -> list[list[str]]:
    """Each `facesearch ...` command line a service runs: its command, the one after
    `check-gpu --`, or those in its `sh -c` script."""
    argv = _command(service)
    if argv[:2] == ["sh", "-c"]:
        script = argv[2].replace(";", " ; ")
        words = shlex.split(script)
        commands, current = [], None
        for word in words:
            if word == "facesearch":
                current = []
                commands.append(current)
            elif word in (";", "do", "done", "while") or word.startswith("sleep"):
                current = None
            elif current is not None:
                current.append(word)
        return [["facesearch", *c] for c in commands]
    if argv[:1] != ["facesearch"]:
        return []
    if "--" in argv:
        return [argv[: argv.index("--")], argv[argv.index("--") + 1 :]]
    return [argv]


def _parse(argv: list[str]) -> click.Context:
    """Parse a `facesearch` command line as click would run it, without running it: every
    option and choice is checked."""
    assert argv[0] == "facesearch"
    ctx = cli.make_context("facesearch", argv[1:])
    command: click.Command = cli
    while isinstance(command, click.Group):
        # click keeps the subcommand's name and arguments here until it resolves them.
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, argv
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    return ctx


def test_every_facesearch_command_line_in_the_file_parses(
    services: dict[str, dict[str, Any]],
) -> None:
    seen = set()
    for name, service in services.items():
        for argv in _facesearch_commands(service):
            ctx = _parse(argv)
            seen.add(ctx.command_path.removeprefix("facesearch "))
            assert not ctx.args or ctx.command.name == "check-gpu", (name, argv, ctx.args)
    assert seen == {
        "serve",
        "worker",
        "beat",
        "db upgrade",
        "models pull",
        "webhooks resend-due",
        "deploy check-gpu",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["worker"],
        ["beat"],
        ["db", "upgrade"],
        ["models", "pull"],
        ["webhooks", "resend-due"],
        ["deploy", "check-gpu"],
    ],
)
def test_entrypoints_answer_help(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, [*argv, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_worker_roles_of_the_file_keep_their_invariants(
    services: dict[str, dict[str, Any]],
) -> None:
    """Each worker service's role is a valid plan against a Milvus server (not embedded)."""
    from workers.roles import Role, plan_process

    for name, service in services.items():
        for argv in _facesearch_commands(service):
            if argv[1:2] == ["worker"]:
                role = argv[argv.index("--role") + 1]
                spec = plan_process(
                    Role(role), queues=None, pool=None, concurrency=None, embedded_index=False
                )
                assert spec.queues, name


def test_the_api_image_runs_the_indexer_and_io_worker_without_the_pipeline(
    tmp_path: Path,
) -> None:
    """The indexer and the io-worker are on the TF_VARIANT=none image: what their tasks
    import must come from its requirement set alone."""
    from importlib.metadata import packages_distributions

    allowed = {*_requirements("api"), "facesearch"}
    hidden = sorted(
        module
        for module, dists in packages_distributions().items()
        if module not in sys.stdlib_module_names
        and not {_normalise(dist) for dist in dists} & allowed
    )
    assert "tensorflow" in hidden
    code = textwrap.dedent(
        f"""
        import importlib, importlib.abc, sys
        hidden = set({hidden!r})
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition('.')[0] in hidden:
                    raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)
        sys.meta_path.insert(0, Hide())
        for module in sys.argv[1:]:
            importlib.import_module(module)
        """
    )
    modules = [
        "workers.celery_app",
        "workers.indexing",
        "workers.reconcile",
        "workers.erasure",
        "workers.webhooks",
        "cli.webhooks",
        "cli.deploy",
    ]
    result = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=ROOT,
        env={**os.environ, "DATA_DIR": str(tmp_path), "MODEL_DIR": str(tmp_path / "models")},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


# --- the GPU check -------------------------------------------------------------------------------


@pytest.mark.slow
def test_gpu_check_fails_here_with_its_message_and_runs_nothing(tmp_path: Path) -> None:
    """This machine has tensorflow-cpu and no GPU: the check must refuse, say why, and not
    run the worker it guards."""
    marker = tmp_path / "ran"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "deploy",
            "check-gpu",
            "--",
            "touch",
            str(marker),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"Error: {NO_GPU}" in result.stderr
    assert "built without CUDA" in result.stderr or "sees no GPU" in result.stderr
    assert "--profile cpu" in result.stderr  # what to run instead
    assert not marker.exists()


def test_gpu_check_in_an_image_without_tensorflow(tmp_path: Path) -> None:
    """The API image (TF_VARIANT=none) run as a GPU worker by mistake: the message says so."""
    code = textwrap.dedent(
        """
        import importlib.abc, sys
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition('.')[0] == 'tensorflow':
                    raise ModuleNotFoundError(name=name)
        sys.meta_path.insert(0, Hide())
        from cli.main import cli
        cli(['deploy', 'check-gpu', '--', 'touch', sys.argv[1]])
        """
    )
    marker = tmp_path / "ran"
    result = subprocess.run(
        [sys.executable, "-c", code, str(marker)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"Error: {NO_GPU}: this image has no TensorFlow (built with TF_VARIANT=none)" in (
        result.stderr
    )
    assert not marker.exists()


# --- the Postgres roles --------------------------------------------------------------------------


class PgCluster:
    """The test Postgres on 127.0.0.1:5432 (trust auth), as its superuser."""

    def __init__(self) -> None:
        self.admin = make_url(PG_ADMIN_URL)

    def url(self, user: str, database: str) -> str:
        return self.admin.set(
            drivername="postgresql+psycopg", username=user, database=database
        ).render_as_string(hide_password=False)

    def execute(self, sql: str, database: str = "postgres") -> list[Any]:
        engine = sa.create_engine(
            self.url(self.admin.username or "postgres", database), isolation_level="AUTOCOMMIT"
        )
        try:
            with engine.connect() as conn:
                result = conn.execute(sa.text(sql))
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()


def _run_roles_script(
    db: str, owner: str, app: str, **env: str
) -> subprocess.CompletedProcess[str]:
    admin = make_url(PG_ADMIN_URL)
    base = {
        "PATH": os.environ["PATH"],
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "POSTGRES_USER": admin.username or "postgres",
        "POSTGRES_DB": db,
        "FACESEARCH_DB_OWNER": owner,
        "FACESEARCH_DB_USER": app,
    }
    return subprocess.run(
        ["sh", str(ROLES_SCRIPT)],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def roles() -> Iterator[tuple[PgCluster, str, str, str]]:
    """A scratch database as the postgres image leaves it (owned by the superuser), two role
    names of its own, and everything dropped afterwards."""
    pg = PgCluster()
    tag = secrets.token_hex(4)
    db, owner, app = f"fs_deploy_{tag}", f"fs_owner_{tag}", f"fs_app_{tag}"
    pg.execute(f'CREATE DATABASE "{db}"')
    try:
        yield pg, db, owner, app
    finally:
        pg.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for role in (app, owner):
            pg.execute(f'DROP ROLE IF EXISTS "{role}"')


def _refused(url: str, sql: str) -> str:
    """Run ``sql`` as the URL's role; it must be refused. Returns Postgres' message."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as caught:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()
    return str(caught.value.orig)


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 48), (200, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_roles_script_refuses_without_passwords(roles: tuple[PgCluster, str, str, str]) -> None:
    _, db, owner, app = roles
    result = _run_roles_script(db, owner, app, FACESEARCH_DB_PASSWORD="x")
    assert result.returncode != 0
    assert "FACESEARCH_DB_OWNER_PASSWORD must be set" in result.stderr


def test_the_app_role_does_the_apps_work_and_nothing_more(
    roles: tuple[PgCluster, str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, db, owner, app = roles
    passwords = {"FACESEARCH_DB_OWNER_PASSWORD": "owner-pw-1", "FACESEARCH_DB_PASSWORD": "app-1"}
    result = _run_roles_script(db, owner, app, **passwords)
    assert result.returncode == 0, result.stderr

    # Neither role is privileged; both have their passwords.
    flags = pg.execute(
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolpassword IS NOT NULL "
        f"FROM pg_authid WHERE rolname IN ('{owner}', '{app}') ORDER BY rolname = '{app}'"
    )
    assert [tuple(row) for row in flags] == [
        (owner, False, False, False, True),
        (app, False, False, False, True),
    ]

    # Migrations as the owner (what the compose `migrate` service does).
    owner_url, app_url = pg.url(owner, db), pg.url(app, db)
    run_migrations(owner_url)
    tables = [
        row[0]
        for row in pg.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database=db
        )
    ]
    assert "jobs" in tables
    owners = pg.execute(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", database=db
    )
    assert [row[0] for row in owners] == [owner]

    # Every table: rows yes, structure no (default privileges reached the new tables).
    for table in tables:
        checks = ("SELECT, INSERT, UPDATE, DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
        granted = pg.execute(
            "SELECT "
            + ", ".join(f"has_table_privilege('{app}', 'public.{table}', '{c}')" for c in checks),
            database=db,
        )
        assert tuple(granted[0]) == (True, False, False, False), table

    # The app's own work as the app role: its commands ...
    monkeypatch.setenv("DATABASE_URL", app_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name in ("BROKER_URL", "STORAGE_URL", "MILVUS_URI"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        for argv in (
            ["galleries", "create", "deploy-test"],
            ["keys", "create", "--gallery", "deploy-test", "--scope", "admin", "--name", "t"],
            ["keys", "list"],
            ["reconcile"],
            ["purge"],
            ["webhooks", "resend-due"],
        ):
            outcome = runner.invoke(cli, argv)
            assert outcome.exit_code == 0, (argv, outcome.output, outcome.exception)
    finally:
        get_settings.cache_clear()

    # ... its requests (an upload: image rows, a job, its items) ...
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        data_dir=tmp_path,
        database_url=app_url,
        broker_url=f"filesystem://{tmp_path / 'broker'}",
        storage_url=f"file://{tmp_path / 'objects'}",
        milvus_uri=str(tmp_path / "milvus.db"),
    )
    from models.db import make_engine, make_session_factory

    engine = make_engine(app_url)
    try:
        client = make_client(settings, make_session_factory(engine))
        answer = client.post(
            "/v1/images",
            data={"file": (io.BytesIO(_jpeg()), "a.jpg")},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 202, answer.get_json()
        job = client.get(answer.headers["Location"])
        assert job.status_code == 200
        assert job.get_json()["status"] == "queued"
        # ... and the index writer's lock.
        from workers.writer_lock import acquire_writer_lock

        acquire_writer_lock(engine, wait_s=0).release()
    finally:
        engine.dispose()

    # What the app role must not do.
    assert "permission denied for schema public" in _refused(app_url, "CREATE TABLE x (id int)")
    assert "must be owner" in _refused(app_url, "DROP TABLE jobs")
    assert "must be owner" in _refused(app_url, "ALTER TABLE jobs ADD COLUMN x int")
    assert "permission denied" in _refused(app_url, "TRUNCATE jobs")
    assert "permission denied" in _refused(app_url, "CREATE ROLE intruder")
    assert "permission denied" in _refused(app_url, "CREATE DATABASE intruder")
    assert "must be owner" in _refused(pg.url(app, "postgres"), f'DROP DATABASE "{db}"')
    # Nor the owner (it runs migrations, not the cluster).
    assert "permission denied" in _refused(owner_url, "CREATE ROLE intruder")
    # No one else may connect to the app's database.
    acl = pg.execute(f"SELECT datacl::text FROM pg_database WHERE datname = '{db}'")[0][0]
    assert not any(entry.startswith("=") for entry in acl.strip("{}").split(","))

    # Idempotent: a second run (a changed password) succeeds and keeps every grant.
    before = pg.execute(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{app}'")[0][0]
    again = _run_roles_script(db, owner, app, **{**passwords, "FACESEARCH_DB_PASSWORD": "app-2"})
    assert again.returncode == 0, again.stderr
    after = pg.execute(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{app}'")[0][0]
    assert after != before
    still = pg.execute(
        f"SELECT has_table_privilege('{app}', 'public.jobs', 'SELECT, INSERT, UPDATE, DELETE')",
        database=db,
    )
    assert still[0][0] is True


# --- MinIO: the init script and the policy -------------------------------------------------------

BUCKET_ACTIONS = {"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"}
OBJECT_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
}


def _policy(bucket: str) -> dict[str, Any]:
    """The policy as init.sh renders it for ``bucket``."""
    text = MINIO_POLICY.read_text(encoding="utf-8").replace("@S3_BUCKET@", bucket)
    return json.loads(text)


def test_the_policy_is_limited_to_the_bucket() -> None:
    policy = _policy("facesearch")
    assert policy["Version"] == "2012-10-17"
    by_resource = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}  # no Condition games
        actions = set(statement["Action"])
        assert not any("*" in action or not action.startswith("s3:") for action in actions)
        (resource,) = statement["Resource"]
        by_resource[resource] = actions
    assert by_resource == {
        "arn:aws:s3:::facesearch": BUCKET_ACTIONS,
        "arn:aws:s3:::facesearch/*": OBJECT_ACTIONS,
    }


def _fake_mc(tmp_path: Path, attach_output: str = "", attach_code: int = 0) -> tuple[Path, Path]:
    """An `mc` that records its arguments (and the policy file it is given) in a log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "mc.log"
    mc = bin_dir / "mc"
    policy_copy = shlex.quote(str(tmp_path / "policy.json"))
    mc.write_text(
        "#!/bin/bash\n"
        f"printf '%s\\n' \"$*\" >> {shlex.quote(str(log))}\n"
        f'if [ "$1 $2 $3" = "admin policy create" ]; then cp "$6" {policy_copy}; fi\n'
        'if [ "$1 $2 $3" = "admin policy attach" ]; then\n'
        f"  printf '%s\\n' {shlex.quote(attach_output)}; exit {attach_code}\n"
        "fi\n"
    )
    mc.chmod(0o755)
    return bin_dir, log


def _run_minio_init(bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "S3_BUCKET": "faces-prod",
        "FACESEARCH_S3_ACCESS_KEY": "facesearch-app",
        "FACESEARCH_S3_SECRET_KEY": "app-secret-123",
    }
    return subprocess.run(
        ["bash", str(MINIO_INIT)],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_minio_init_makes_the_bucket_the_user_and_its_policy(tmp_path: Path) -> None:
    bin_dir, log = _fake_mc(tmp_path)
    result = _run_minio_init(bin_dir)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "mb --ignore-existing local/faces-prod"
    assert calls[1].startswith("admin policy create local facesearch-app ")
    assert calls[2:] == [
        "admin user add local facesearch-app app-secret-123",
        "admin policy attach local facesearch-app --user facesearch-app",
    ]
    # The policy it gave MinIO names the bucket it made, and only that one.
    assert json.loads((tmp_path / "policy.json").read_text()) == _policy("faces-prod")


def test_minio_init_is_idempotent_and_fails_on_real_errors(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    already = "mc: <ERROR> The specified policy change is already in effect."
    bin_dir, _ = _fake_mc(first, already, 1)
    assert _run_minio_init(bin_dir).returncode == 0
    bin_dir, _ = _fake_mc(second, "mc: <ERROR> Unable to attach: access denied", 1)
    failed = _run_minio_init(bin_dir)
    assert failed.returncode != 0
    assert "access denied" in failed.stderr
    missing = _run_minio_init(bin_dir, FACESEARCH_S3_SECRET_KEY="")
    assert missing.returncode != 0
    assert "FACESEARCH_S3_SECRET_KEY must be set" in missing.stderr


# moto evaluates IAM policies when INITIAL_NO_AUTH_ACTION_COUNT is set (read when moto is
# imported, hence a process of its own). The server's process also does the set-up that
# minio-init does with MinIO's root, in the six requests let through unsigned: the app's
# bucket and another, a user, the policy, attached, and the user's key. Every later request
# must be signed by a known key and allowed by its policies.
_MOTO_SERVER = """
import json, os, sys
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "6"
import boto3
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
setup = {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1",
         "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
s3, iam = boto3.client("s3", **setup), boto3.client("iam", **setup)
s3.create_bucket(Bucket="facesearch")
s3.create_bucket(Bucket="other")
iam.create_user(UserName="facesearch-app")
arn = iam.create_policy(PolicyName="facesearch-app", PolicyDocument=sys.argv[1])
iam.attach_user_policy(UserName="facesearch-app", PolicyArn=arn["Policy"]["Arn"])
key = iam.create_access_key(UserName="facesearch-app")["AccessKey"]
print(json.dumps([port, key["AccessKeyId"], key["SecretAccessKey"]]), flush=True)
sys.stdin.read()
server.stop()
"""


@pytest.fixture
def enforcing_s3() -> Iterator[tuple[str, str, str]]:
    """(host:port, access key, secret key) of the app's user on the S3 server."""
    policy = _policy("facesearch")
    # moto names HEAD on a bucket s3:HeadBucket; S3 and MinIO check s3:ListBucket for it.
    policy["Statement"][0]["Action"].append("s3:HeadBucket")
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO_SERVER, json.dumps(policy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the S3 server did not start"
        port, access_key, secret_key = json.loads(line)
        yield f"127.0.0.1:{port}", access_key, secret_key
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_the_app_store_works_in_its_bucket_and_nowhere_else(
    enforcing_s3: tuple[str, str, str],
) -> None:
    from minio import Minio
    from minio.error import S3Error

    from core.storage import StorageError, open_store

    endpoint, access_key, secret_key = enforcing_s3
    # Percent-encoded, as the README asks of any secret in a URL: moto's generated secrets
    # may hold "/" or "+".
    credentials = f"{quote(access_key, safe='')}:{quote(secret_key, safe='')}"

    # The app's own store, as STORAGE_URL names it: everything it does works ...
    store = open_store(f"s3://{credentials}@{endpoint}/facesearch?part_size_mb=5")
    store.check()
    store.put("objects/ab/cd", b"bytes")
    assert store.get("objects/ab/cd") == b"bytes"
    assert store.exists("objects/ab/cd")
    big = os.urandom(6 * 1024 * 1024)  # two parts: a multipart upload
    store.put_stream("objects/big", io.BytesIO(big), length=len(big))
    with store.open("objects/big") as stream:
        assert stream.read() == big
    store.delete("objects/ab/cd")
    store.delete("objects/big")
    assert not store.exists("objects/ab/cd")

    # ... and nothing outside its bucket does.
    with pytest.raises(StorageError, match="AccessDenied"):
        open_store(f"s3://{credentials}@{endpoint}/other").check()
    with pytest.raises(StorageError, match="AccessDenied"):
        open_store(f"s3://{credentials}@{endpoint}/new-bucket").put("x", b"x")
    client = Minio(endpoint, access_key, secret_key, secure=False, region="us-east-1")
    for attempt in (
        client.list_buckets,
        lambda: client.put_object("other", "x", io.BytesIO(b"x"), 1),
        lambda: client.remove_bucket("facesearch"),
        lambda: client.set_bucket_policy("facesearch", json.dumps(_policy("facesearch"))),
    ):
        with pytest.raises(S3Error) as refused:
            attempt()
        assert refused.value.code == "AccessDenied"
