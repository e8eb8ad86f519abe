"""Offline checks of the distributed deployment: docker-compose.yml, Dockerfile, .dockerignore.

No Docker engine is needed. The compose file is parsed, interpolated as Compose does with the
example `.env` (deploy/compose/example.env, which sets every required secret), checked against
the promises in docs/distributed.md and the README, and validated against the Compose
Specification's JSON schema (vendored in tests/data/compose-spec.json, Apache-2.0, see
tests/data/compose-spec.LICENSE). `docker compose config` (or Debian's `docker-compose`, which
.ci/run installs) checks it as well. The pieces the services run (entrypoints, the GPU check,
the Postgres roles, the MinIO policy) are run for real in tests/test_deploy.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from tests.milvus_server import SERVER_CONFIG

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PORTS_OVERRIDE = ROOT / "deploy" / "compose" / "publish-ports.yml"
EXAMPLE_ENV = ROOT / "deploy" / "compose" / "example.env"
DISTRIBUTED_DOC = ROOT / "docs" / "distributed.md"
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCHEMA_FILE = Path(__file__).parent / "data" / "compose-spec.json"

INFRA_WITH_HEALTHCHECK = ("postgres", "redis", "minio", "milvus", "milvus-etcd", "milvus-minio")
GPU_WORKERS = ("worker-gpu0", "worker-gpu1")
# The workers that load the face pipeline (and so mount the weights).
PIPELINE_WORKERS = (*GPU_WORKERS, "worker-cpu", "searcher")
WORKERS = (*PIPELINE_WORKERS, "io-worker", "indexer")
ONE_SHOT = ("migrate", "models-pull", "minio-init")
APP_SERVICES = (*WORKERS, "migrate", "models-pull", "api", "beat", "webhook-resender")
EXPECTED_SERVICES = {*INFRA_WITH_HEALTHCHECK, *APP_SERVICES, "minio-init", "flower"}
# The build variant (Dockerfile TF_VARIANT) of each app service: TensorFlow only where a model
# runs, CUDA only where a GPU is reserved.
VARIANTS = {
    "api": "none",
    "migrate": "none",
    "io-worker": "none",
    "indexer": "none",
    "beat": "none",
    "webhook-resender": "none",
    "models-pull": "cpu",
    "searcher": "cpu",
    "worker-cpu": "cpu",
    "worker-gpu0": "gpu",
    "worker-gpu1": "gpu",
}
# Every secret has no default: Compose refuses to start until it is set.
REQUIRED = {
    "POSTGRES_PASSWORD",
    "FACESEARCH_DB_OWNER_PASSWORD",
    "FACESEARCH_DB_PASSWORD",
    "REDIS_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "FACESEARCH_S3_SECRET_KEY",
    "MILVUS_MINIO_SECRET_KEY",
    "FLOWER_BASIC_AUTH",
}
WORKER_METRICS_PORT = "9100"

# --- interpolation, as Compose does it ----------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


def _interpolate_str(text: str, env: dict[str, str]) -> str:
    def replace(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        if m["invalid"] is not None:
            raise ValueError(f"invalid interpolation at {m.start()} in {text!r}")
        name = m["braced"] or m["named"]
        op, arg = m["op"], m["arg"] or ""
        value = env.get(name)
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?"):
            if (op == ":?" and not value) or value is None:
                raise ValueError(f"required variable {name} is not set: {arg}")
            return value
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if value is not None else ""
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Interpolate every string value (not keys), like Compose before it validates."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, str):
        return _interpolate_str(node, env)
    return node


def test_interpolation_helper_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert _interpolate_str("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == "v d d "
    assert _interpolate_str("$$x $SET ${UNSET}", env) == "$x v "
    assert _interpolate_str("${SET:+on}${UNSET:+on}", env) == "on"
    with pytest.raises(ValueError, match="required"):
        _interpolate_str("${UNSET:?needed}", env)


def read_env_file(path: Path) -> dict[str, str]:
    """A Compose `.env` file: NAME=value lines, `#` comments."""
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def interpolations(text: str) -> list[re.Match[str]]:
    """Every `${...}` in a compose file's values, comments left out."""
    uncommented = "\n".join(
        line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#")
    )
    return [m for m in _INTERPOLATION.finditer(uncommented) if not m["escaped"]]


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(EXAMPLE_ENV)


@pytest.fixture(scope="module")
def compose(raw_text: str, example_env: dict[str, str]) -> dict[str, Any]:
    """The compose file as `docker compose config` sees it with the example `.env`."""
    document = yaml.safe_load(raw_text)
    assert isinstance(document, dict)
    return interpolate(document, env=example_env)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _main_command(service: dict[str, Any]) -> list[str]:
    """The command a service ends up running: what follows `check-gpu --`, if it is there."""
    argv = _command(service)
    return (
        argv[argv.index("--") + 1 :] if argv[:3] == ["facesearch", "deploy", "check-gpu"] else argv
    )


def _option(argv: list[str], *names: str) -> str | None:
    """The value of a command-line option given as `--name value` or `--name=value`."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "=") and name.startswith("--"):
                return arg.split("=", 1)[1]
    return None


def _queues(service: dict[str, Any]) -> set[str]:
    """The queues a worker service consumes: its `--queues`, or its `--role`'s."""
    from workers.roles import ROLE_QUEUES, Role

    argv = _main_command(service)
    if argv[:2] != ["facesearch", "worker"]:
        return set()
    value = _option(argv, "-Q", "--queues")
    if value:
        return set(value.split(","))
    role = _option(argv, "--role")
    return set(ROLE_QUEUES[Role(role)]) if role else set()


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    assert isinstance(deps, dict), "depends_on must use the long form, with a condition"
    return deps


def _health_test(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def _seconds(duration: str) -> float:
    """A Compose duration ("1m30s", "16m", "40s") in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, "an empty duration"
    assert parts, f"not a duration: {duration!r}"
    hours, minutes, seconds = (int(part or 0) for part in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


# --- the compose file -----------------------------------------------------------------------------


def test_services_are_the_documented_ones(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_secrets_are_required_and_everything_else_has_a_default(raw_text: str) -> None:
    """No weak default password: each secret is `${VAR:?message}`, and Compose refuses to
    start without it; every other variable has a default, so only the secrets must be set."""
    required: set[str] = set()
    for m in interpolations(raw_text):
        assert m["invalid"] is None, f"stray '$' near: {raw_text[m.start() : m.start() + 40]!r}"
        name = m["braced"] or m["named"]
        assert "$" not in (m["arg"] or ""), f"nested interpolation in ${{{name}}}"
        if m["op"] == ":?":
            assert name in (m["arg"] or ""), f"${{{name}:?...}} must name itself in its message"
            required.add(name)
        else:
            assert m["op"] in (":-", "-"), f"${{{name}}} has no default and is not required"
            assert not re.search(r"PASSWORD|SECRET|AUTH", name), f"{name} has a default"
    assert required == REQUIRED


def test_each_missing_secret_stops_compose_with_its_name(
    raw_text: str, example_env: dict[str, str]
) -> None:
    document = yaml.safe_load(raw_text)
    for name in REQUIRED:
        env = {k: v for k, v in example_env.items() if k != name}
        with pytest.raises(ValueError, match=f"required variable {name} is not set: set {name}"):
            interpolate(document, env)


def test_the_example_env_sets_exactly_the_secrets(example_env: dict[str, str]) -> None:
    assert set(example_env) == {*REQUIRED, "COMPOSE_PROJECT_NAME"}
    assert all(value for value in example_env.values())
    # MinIO refuses secrets shorter than 8 characters.
    for name in ("MINIO_ROOT_PASSWORD", "FACESEARCH_S3_SECRET_KEY", "MILVUS_MINIO_SECRET_KEY"):
        assert len(example_env[name]) >= 8, name


def test_every_dependency_has_a_condition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, spec in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec.get("condition")
            if target in ONE_SHOT:
                expected = "service_completed_successfully"
            elif "healthcheck" in services[target]:
                expected = "service_healthy"
            else:
                expected = "service_started"
            assert condition == expected, f"{name} -> {target}: {condition!r}, want {expected!r}"


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in (*INFRA_WITH_HEALTHCHECK, "api"):
        test = services[name]["healthcheck"]["test"]
        assert isinstance(test, list)
        assert test[0] in ("CMD", "CMD-SHELL"), name
    # Over TCP: the image's temporary server of the init phase (roles not yet made) listens
    # on the socket only.
    assert "pg_isready -h 127.0.0.1" in _health_test(services["postgres"])
    assert "redis-cli ping" in _health_test(services["redis"])
    assert "REDISCLI_AUTH" in _health_test(services["redis"])
    assert "/minio/health/live" in _health_test(services["minio"])
    assert "/minio/health/live" in _health_test(services["milvus-minio"])
    assert "etcdctl endpoint health" in _health_test(services["milvus-etcd"])
    assert ":9091/healthz" in _health_test(services["milvus"])
    assert ":8000/readyz" in _health_test(services["api"])


def test_only_the_api_is_published(services: dict[str, dict[str, Any]]) -> None:
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {"api": ["127.0.0.1:8000:8000"]}


def test_the_ports_override_publishes_backing_services_on_loopback(
    example_env: dict[str, str], services: dict[str, dict[str, Any]]
) -> None:
    override = interpolate(yaml.safe_load(PORTS_OVERRIDE.read_text(encoding="utf-8")), {})
    assert set(override) == {"services"}
    assert set(override["services"]) == {"postgres", "minio", "milvus", "flower"}
    for name, service in override["services"].items():
        assert name in services
        assert set(service) == {"ports"}, f"the override changes only ports ({name})"
        for port in service["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port!r} off loopback"


def test_milvus_follows_the_upstream_standalone_layout(
    services: dict[str, dict[str, Any]],
) -> None:
    milvus = services["milvus"]
    assert _command(milvus) == ["milvus", "run", "standalone"]
    assert milvus["image"] == "milvusdb/milvus:v3.0.1"  # upstream's pairing for pymilvus 3.0.1
    env = milvus["environment"]
    assert env["ETCD_ENDPOINTS"] == "milvus-etcd:2379"
    assert env["MINIO_ADDRESS"] == "milvus-minio:9000"
    # Milvus' MinIO is its own, not the app's, and uses the same credentials Milvus is given.
    milvus_minio = services["milvus-minio"]["environment"]
    assert milvus_minio["MINIO_ROOT_USER"] == env["MINIO_ACCESS_KEY_ID"]
    assert milvus_minio["MINIO_ROOT_PASSWORD"] == env["MINIO_SECRET_ACCESS_KEY"]
    assert set(_depends_on(milvus)) == {"milvus-etcd", "milvus-minio"}


# What a service may add to the shared app environment, and why.
ENV_EXTRAS = {
    "migrate": {"DATABASE_URL"},  # the schema's owner, not the app role
    "api": {"PROMETHEUS_MULTIPROC_DIR"},
    "webhook-resender": {"WEBHOOK_RESEND_INTERVAL_S"},
    **{name: {"WORKER_METRICS_PORT", "WORKER_METRICS_HOST"} for name in WORKERS},
    **{
        name: {"WORKER_METRICS_PORT", "WORKER_METRICS_HOST", "TF_FORCE_GPU_ALLOW_GROWTH"}
        for name in GPU_WORKERS
    },
}


def test_app_services_share_one_configuration(services: dict[str, dict[str, Any]]) -> None:
    shared = services["beat"]["environment"]
    assert shared["APP_ENV"] == "production"
    assert shared["LOG_JSON"] == "true"
    assert shared["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert shared["DATABASE_URL"].endswith("@postgres:5432/facesearch")
    assert shared["BROKER_URL"].startswith("redis://:")
    assert shared["BROKER_URL"].endswith("@redis:6379/0")
    assert shared["STORAGE_URL"].startswith("s3://")
    assert shared["STORAGE_URL"].endswith("@minio:9000/facesearch")
    assert shared["MILVUS_URI"] == "http://milvus:19530"
    assert shared["MODEL_NAME"] == "facenet-20170512-110547"
    for name in APP_SERVICES:
        env = services[name]["environment"]
        extras = ENV_EXTRAS.get(name, set())
        assert {k: v for k, v in env.items() if k not in extras} == {
            k: v for k, v in shared.items() if k not in extras
        }, name
        assert set(env) - set(shared) <= extras, name


def test_the_app_holds_scoped_credentials_only(services: dict[str, dict[str, Any]]) -> None:
    """The app connects as a role that is not the superuser and not the schema's owner, and
    to MinIO as the user minio-init limits to the bucket, never as MinIO's root."""
    from sqlalchemy.engine import make_url

    pg = services["postgres"]["environment"]
    app_url = make_url(services["api"]["environment"]["DATABASE_URL"])
    owner_url = make_url(services["migrate"]["environment"]["DATABASE_URL"])
    assert (app_url.username, app_url.password) == (
        pg["FACESEARCH_DB_USER"],
        pg["FACESEARCH_DB_PASSWORD"],
    )
    assert (owner_url.username, owner_url.password) == (
        pg["FACESEARCH_DB_OWNER"],
        pg["FACESEARCH_DB_OWNER_PASSWORD"],
    )
    assert len({pg["POSTGRES_USER"], app_url.username, owner_url.username}) == 3
    assert len({pg["POSTGRES_PASSWORD"], app_url.password, owner_url.password}) == 3
    assert app_url.database == owner_url.database == pg["POSTGRES_DB"]
    # The roles are made by the script the image runs on first start.
    assert (
        "./deploy/postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-facesearch-roles.sh:ro"
        in services["postgres"]["volumes"]
    )

    minio = services["minio"]["environment"]
    init = services["minio-init"]["environment"]
    storage = services["api"]["environment"]["STORAGE_URL"]
    assert storage.startswith(
        f"s3://{init['FACESEARCH_S3_ACCESS_KEY']}:{init['FACESEARCH_S3_SECRET_KEY']}@"
    )
    assert storage.rsplit("/", 1)[1] == init["S3_BUCKET"]
    assert init["FACESEARCH_S3_ACCESS_KEY"] != minio["MINIO_ROOT_USER"]
    assert minio["MINIO_ROOT_PASSWORD"] not in storage
    assert init["MC_HOST_local"] == (
        f"http://{minio['MINIO_ROOT_USER']}:{minio['MINIO_ROOT_PASSWORD']}@minio:9000"
    )
    assert services["minio-init"]["entrypoint"] == ["bash", "/deploy/minio/init.sh"]
    assert "./deploy/minio:/deploy/minio:ro" in services["minio-init"]["volumes"]

    # The broker's password is the one Redis is started with, in the app and in Flower.
    redis_password = services["redis"]["environment"]["REDIS_PASSWORD"]
    broker = services["api"]["environment"]["BROKER_URL"]
    assert broker == f"redis://:{redis_password}@redis:6379/0"
    assert "--requirepass" in " ".join(_command(services["redis"]))
    assert services["flower"]["environment"]["REDIS_PASSWORD"] == redis_password
    user, _, password = services["flower"]["environment"]["FLOWER_BASIC_AUTH"].partition(":")
    assert user
    assert password


def test_images_by_variant_each_under_its_own_tag(services: dict[str, dict[str, Any]]) -> None:
    variants = {}
    tags: dict[str, set[str]] = {}
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert build["context"] == "."
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        variant = build["args"]["TF_VARIANT"]
        variants[name] = variant
        tags.setdefault(variant, set()).add(services[name]["image"])
    assert variants == VARIANTS
    # One tag per variant, and no two variants share one: a build never overwrites another's.
    assert all(len(images) == 1 for images in tags.values()), tags
    assert tags == {
        "none": {"facesearch:latest-api"},
        "cpu": {"facesearch:latest"},
        "gpu": {"facesearch:latest-gpu"},
    }


def test_third_party_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in APP_SERVICES:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image!r} has no tag"
        assert "/" not in tag, f"{name}: {image!r} has no tag"
        assert tag != "latest", name
        # A release, not a moving major (postgres:16, redis:7): at least major.minor.
        assert re.search(r"\d+\.\d+|RELEASE\.\d{4}-", tag), f"{name}: {image!r} is not pinned"


def test_one_shots_run_first(services: dict[str, dict[str, Any]]) -> None:
    assert _command(services["migrate"]) == ["facesearch", "db", "upgrade"]
    assert _command(services["models-pull"]) == ["facesearch", "models", "pull"]
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no"
    for name in ("api", *WORKERS, "beat", "webhook-resender"):
        deps = _depends_on(services[name])
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
        # Beat only sends tasks: it never opens the database.
        if name != "beat":
            assert deps["postgres"]["condition"] == "service_healthy", name
    for name in ("api", *WORKERS):
        assert _depends_on(services[name])["milvus"]["condition"] == "service_healthy", name
    for name in ("api", *PIPELINE_WORKERS, "io-worker"):
        deps = _depends_on(services[name])
        assert deps["minio-init"]["condition"] == "service_completed_successfully", name
        assert deps["minio"]["condition"] == "service_healthy", name
    for name in PIPELINE_WORKERS:
        deps = _depends_on(services[name])
        assert deps["models-pull"]["condition"] == "service_completed_successfully", name


def test_api_runs_facesearch_serve_with_multiprocess_metrics(
    services: dict[str, dict[str, Any]],
) -> None:
    api = services["api"]
    argv = _command(api)
    assert argv[:2] == ["facesearch", "serve"]
    assert _option(argv, "--host") == "0.0.0.0"
    assert _option(argv, "--port") == "8000"
    assert int(_option(argv, "--workers") or 0) >= 2
    # prometheus_client's multiprocess folder must start empty: a tmpfs is, at every start.
    folder = api["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert [mount.split(":", 1)[0] for mount in api["tmpfs"]] == [folder]
    assert "uid=10001" in api["tmpfs"][0]  # the image's user (Dockerfile) writes in it
    # gunicorn lets requests in flight finish for its graceful timeout (30 s).
    assert _seconds(api["stop_grace_period"]) > 30


def test_workers_by_workload(services: dict[str, dict[str, Any]]) -> None:
    """Searches, bulk ingest, I/O and index writes each have a service (README, "Workers")."""
    for name in WORKERS:
        argv = _main_command(services[name])
        assert argv[:2] == ["facesearch", "worker"], name
        assert _option(argv, "--role"), f"{name} must say its role"
        assert "container_name" not in services[name] or name == "indexer", name
    for name in (*GPU_WORKERS, "worker-cpu"):
        assert _queues(services[name]) >= {"ingest"}
        assert "search" not in _queues(services[name])
    assert _queues(services["searcher"]) == {"search"}
    assert _queues(services["io-worker"]) == {"io"}
    consumed = set().union(*(_queues(services[name]) for name in WORKERS))
    assert consumed >= {"search", "ingest", "io", "index"}
    # The light worker has no weights to mount: it never loads TensorFlow.
    assert "volumes" not in services["io-worker"]
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert services["worker-gpu1"]["profiles"] == ["gpu1"]
    assert "profiles" not in services["worker-gpu0"]


def test_one_gpu_worker_per_gpu(services: dict[str, dict[str, Any]]) -> None:
    """Each GPU worker reserves one GPU by id (a `count: all` would give every replica every
    GPU, and TensorFlow would compute on the first in each), and checks it has one first."""
    for index, name in enumerate(GPU_WORKERS):
        service = services[name]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [
            {"driver": "nvidia", "device_ids": [str(index)], "capabilities": ["gpu"]}
        ]
        assert _command(service)[:4] == ["facesearch", "deploy", "check-gpu", "--"]
        assert _main_command(service) == ["facesearch", "worker", "--role", "ingest"]
        assert service["environment"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    for name, service in services.items():
        if name not in GPU_WORKERS:
            assert "devices" not in str(service.get("deploy", {})), name
            assert "check-gpu" not in _command(service), name


def test_workers_outlast_their_longest_task_when_stopped(
    services: dict[str, dict[str, Any]],
) -> None:
    """A stop (a redeploy) lets the running task finish: Celery's warm shutdown waits for it,
    and Docker waits stop_grace_period before SIGKILL. The longest a task may run is its time
    limit; the bounded runs (archives, erasures) are shorter still."""
    # The defaults, with the compose file's kind of broker.
    settings = Settings(_env_file=None, broker_url="redis://redis:6379/0")  # type: ignore[call-arg]
    longest = max(
        settings.task_time_limit_s,
        settings.archive_task_budget_s,
        settings.erasure_task_budget_s,
    )
    for name in WORKERS:
        grace = _seconds(services[name]["stop_grace_period"])
        assert grace >= longest + 60, f"{name}: {grace} s, the longest task runs {longest} s"
    # A task SIGKILLed anyway comes back after the visibility timeout: no sooner than it ends.
    from core.queue import broker_options

    visibility = broker_options(settings)[1]["visibility_timeout"]
    assert visibility >= settings.task_time_limit_s


def test_worker_metrics_on_the_container_network_only(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in WORKERS:
        service = services[name]
        assert service["environment"]["WORKER_METRICS_PORT"] == WORKER_METRICS_PORT, name
        # All interfaces of the container, so that a scraper on the network reaches it ...
        assert service["environment"]["WORKER_METRICS_HOST"] == "0.0.0.0", name
        assert service["expose"] == [WORKER_METRICS_PORT], name
        # ... and none of the host's.
        assert "ports" not in service, name


def test_exactly_one_index_writer(services: dict[str, dict[str, Any]]) -> None:
    consumers = [name for name, service in services.items() if "index" in _queues(service)]
    assert consumers == ["indexer"]
    indexer = services["indexer"]
    argv = _command(indexer)
    assert argv == ["facesearch", "worker", "--role", "index"]  # solo, one task at a time
    assert _queues(indexer) == {"index"}
    assert indexer.get("deploy", {}).get("replicas", 1) == 1
    assert "scale" not in indexer
    # A fixed container name makes `--scale indexer=2` fail instead of adding a second writer.
    assert indexer["container_name"].endswith("-indexer")


def test_indexer_has_a_comment_saying_why_it_is_single(raw_text: str) -> None:
    block = raw_text[: raw_text.index("\n  indexer:")].rsplit("\n\n", 1)[-1]
    assert "ONLY process that writes to Milvus" in block
    assert "--concurrency 1" in block


def test_periodic_work_is_scheduled(services: dict[str, dict[str, Any]]) -> None:
    """Exactly one beat sends the reconciler and the retention purge; the webhook resender
    runs `facesearch webhooks resend-due`, which beat does not send."""
    from core.queue import PURGE_SEARCHES_TASK, RECONCILE_TASK
    from workers.celery_app import celery_app

    beat = services["beat"]
    assert _command(beat) == ["facesearch", "beat"]
    assert beat["container_name"].endswith("-beat")
    assert beat["deploy"]["replicas"] == 1
    assert [name for name, s in services.items() if "beat" in _command(s)] == ["beat"]
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert scheduled == {RECONCILE_TASK, PURGE_SEARCHES_TASK}

    resender = services["webhook-resender"]
    script = _command(resender)
    assert script[:2] == ["sh", "-c"]
    assert "facesearch webhooks resend-due" in script[2]
    assert '"$WEBHOOK_RESEND_INTERVAL_S"' in script[2]
    assert int(resender["environment"]["WEBHOOK_RESEND_INTERVAL_S"]) > 0


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        want = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == want, name


def test_data_lives_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Data in named volumes; the only host paths mounted are the set-up scripts, read-only."""
    declared = set(compose["volumes"])
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith("./"):
                assert source.startswith("./deploy/"), f"{name} mounts {source!r}"
                assert str(volume).endswith(":ro"), f"{name} mounts {source!r} writable"
                assert (ROOT / source).exists(), f"{name} mounts {source!r}, which is missing"
                continue
            assert source in declared, f"{name} mounts {source!r}, not a named volume"
            used.add(source)
    assert used == declared
    assert services["models-pull"]["volumes"] == ["models:/models"]
    for name in PIPELINE_WORKERS:
        assert "models:/models:ro" in services[name]["volumes"]
    for name in APP_SERVICES:
        assert services[name]["environment"]["MODEL_DIR"] == "/models"


def _validator() -> Any:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed: schema validation skipped"
    )
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    return validator_cls(schema)


def test_compose_spec_schema(compose: dict[str, Any]) -> None:
    override = interpolate(yaml.safe_load(PORTS_OVERRIDE.read_text(encoding="utf-8")), {})
    validator = _validator()
    for document in (compose, override):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The schema check has teeth: an unknown key and a wrong type are both caught."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["helthcheck"] = {}
    broken["services"]["indexer"]["depends_on"]["migrate"]["condition"] = "service_done"
    messages = " ".join(e.message for e in _validator().iter_errors(broken))
    assert "helthcheck" in messages
    assert "service_done" in messages


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _run_compose_cli(
    *args: str, env_file: Path | None = EXAMPLE_ENV
) -> subprocess.CompletedProcess[str]:
    cli = _compose_cli()
    if cli is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have a Compose CLI: .ci/run installs Debian's docker-compose")
        pytest.skip(
            "neither `docker compose` nor `docker-compose` is installed "
            "(apt-get install docker-compose); the checks above still apply"
        )
    # A clean environment: what the file needs comes from the env file alone.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    env_args = ["--env-file", str(env_file)] if env_file else []
    return subprocess.run(
        [*cli, "--project-directory", str(ROOT), *env_args, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


def test_compose_cli_config() -> None:
    result = _run_compose_cli("config", "-q")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_cli_config_with_every_profile_and_the_ports_override() -> None:
    result = _run_compose_cli(
        "-f", str(PORTS_OVERRIDE), "--profile", "cpu", "--profile", "gpu1", "config"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    merged = yaml.safe_load(result.stdout)
    assert set(merged["services"]) == EXPECTED_SERVICES
    published = {name for name, s in merged["services"].items() if s.get("ports")}
    assert published == {"api", "postgres", "minio", "milvus", "flower"}


def test_compose_cli_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("COMPOSE_PROJECT_NAME=facesearch\n", encoding="utf-8")
    result = _run_compose_cli("config", "-q", env_file=empty)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert any(f"set {name} (" in output for name in REQUIRED), output


# --- the documentation says what the file does ---------------------------------------------------


def _section(text: str, heading: str) -> str:
    """From a Markdown heading to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2 :]
    stop = re.search(rf"\n#{{1,{len(level)}}} ", rest)
    return rest[: stop.start()] if stop else rest


def _table_names(section: str, pattern: str) -> set[str]:
    """Backticked names matching `pattern` in the first column of a Markdown table."""
    names = set()
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            first = line.split("|")[1]
            names.update(n for n in re.findall(r"`([^`]+)`", first) if re.fullmatch(pattern, n))
    return names


def _compose_variables() -> set[str]:
    names = set()
    for path in (COMPOSE_FILE, PORTS_OVERRIDE):
        for m in interpolations(path.read_text(encoding="utf-8")):
            names.add(m["braced"] or m["named"])
    return names


def test_the_guide_documents_every_service_and_variable() -> None:
    """docs/distributed.md: its Services table is the file's services, its Variables table the
    file's variables (and the override's), its `.env` example the example file."""
    doc = DISTRIBUTED_DOC.read_text(encoding="utf-8")
    documented = _table_names(_section(doc, "## Services"), r"[a-z][a-z0-9-]*")
    assert documented == EXPECTED_SERVICES
    variables = _table_names(_section(doc, "## Variables"), r"[A-Z][A-Z0-9_]*")
    assert variables == _compose_variables()
    required = {
        name
        for line in _section(doc, "## Variables").splitlines()
        if line.startswith("| ") and "**required**" in line
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1])
    }
    assert required == REQUIRED
    # The `.env` it shows is the example file, word for word.
    assert EXAMPLE_ENV.read_text(encoding="utf-8") in doc


def test_the_readme_deployment_section_matches_the_file() -> None:
    readme = README.read_text(encoding="utf-8")
    section = _section(readme, "### Deployment")
    listed = _table_names(section, r"[a-z][a-z0-9-]*")
    assert listed == EXPECTED_SERVICES
    assert set(re.findall(r"`([A-Z][A-Z0-9_]*)`", section)) >= REQUIRED


# --- the image --------------------------------------------------------------------------------

REQUIREMENTS = ROOT / "requirements"
# TF_VARIANT -> the requirement set (exported from uv.lock by `make lock`) that image installs.
IMAGE_SETS = {"none": "api", "cpu": "worker", "gpu": "worker-gpu"}
# What the face pipeline brings; the API image (TF_VARIANT=none) must carry none of it.
PIPELINE_ONLY = {"tensorflow", "tensorflow-cpu", "keras", "mtcnn", "keras-facenet", "matplotlib"}


def _dockerfile_instructions() -> list[str]:
    joined = re.sub(r"\\\n", "", DOCKERFILE.read_text(encoding="utf-8"))
    return [line for line in joined.splitlines() if line and not line.lstrip().startswith("#")]


def test_dockerfile_builds_every_variant_from_one_file() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not (ROOT / "Dockerfile.gpu").exists()
    assert "ARG TF_VARIANT=cpu" in text
    assert "ARG PULL_MODELS=true" in text
    assert "facesearch models pull" in text
    assert "<<" not in text, "heredocs need BuildKit; docker-compose 1.29 builds without it"
    instructions = _dockerfile_instructions()
    assert instructions[0].startswith("ARG PYTHON_VERSION=3.11")
    assert any(line.startswith("USER ") and "root" not in line for line in instructions)
    # The lock is copied alone before the code, so a code change does not reinstall TensorFlow.
    copies = [line for line in instructions if line.startswith("COPY ")]
    assert copies == ["COPY requirements/ ./requirements/", "COPY . ."]
    # The project itself comes last, without dependencies: they all came from the lock.
    assert any(line.startswith("RUN pip install --no-deps .") for line in instructions)
    assert not any("pyproject.toml" in line for line in instructions if line.startswith("RUN "))


def _install_step() -> str:
    steps = [line for line in _dockerfile_instructions() if "pip install --require-hashes" in line]
    assert len(steps) == 1, "expected one locked install step in the Dockerfile"
    return steps[0].removeprefix("RUN ")


def _run_install_step(variant: str, tmp_path: Path) -> tuple[int, str, list[list[str]]]:
    """Run the Dockerfile's own install step with a `pip` that records its arguments."""
    bin_dir = tmp_path / f"bin-{variant}"
    bin_dir.mkdir()
    log = tmp_path / f"pip-{variant}.log"
    fake_pip = bin_dir / "pip"
    fake_pip.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(log))}\n')
    fake_pip.chmod(0o755)
    result = subprocess.run(
        ["/bin/sh", "-c", _install_step()],
        cwd=ROOT,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "TF_VARIANT": variant},
        capture_output=True,
        text=True,
        check=False,
    )
    calls = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return result.returncode, result.stderr, calls


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(name: str) -> dict[str, dict[str, list[str]]]:
    """A requirement file's entries: package -> version -> hashes. A package may be pinned
    once per Python version range (the lock covers 3.11 to 3.13), each entry with a marker."""
    text = (REQUIREMENTS / f"{name}.txt").read_text(encoding="utf-8")
    entries: dict[str, dict[str, list[str]]] = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        assert not entry.startswith("-"), f"{name}.txt: unexpected option {entry!r}"
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", entry)
        assert m, f"{name}.txt: {entry!r} is not pinned with =="
        versions = entries.setdefault(_normalise(m[1]), {})
        assert m[2] not in versions, f"{name}.txt lists {m[1]}=={m[2]} twice"
        versions[m[2]] = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
    return entries


@pytest.mark.skipif(not Path("/bin/sh").exists(), reason="needs a POSIX shell")
@pytest.mark.parametrize(("variant", "name"), IMAGE_SETS.items())
def test_dockerfile_installs_from_the_lock_with_hashes(
    variant: str, name: str, tmp_path: Path
) -> None:
    code, stderr, calls = _run_install_step(variant, tmp_path)
    assert code == 0, stderr
    assert calls == [["install", "--require-hashes", "-r", f"requirements/{name}.txt"], ["check"]]
    entries = _requirements(name)
    assert entries
    for package, versions in entries.items():
        for version, hashes in versions.items():
            assert hashes, f"{name}.txt: {package}=={version} has no hash"


def test_dockerfile_refuses_an_unknown_variant(tmp_path: Path) -> None:
    code, stderr, calls = _run_install_step("tpu", tmp_path)
    assert code != 0
    assert "TF_VARIANT must be none, cpu or gpu" in stderr
    assert calls == []


def test_the_api_image_carries_no_tensorflow() -> None:
    api, worker, gpu = (_requirements(name) for name in ("api", "worker", "worker-gpu"))
    assert not PIPELINE_ONLY & set(api)
    assert not any(package.startswith("nvidia-") for package in api)
    assert {"tensorflow-cpu", "keras", "mtcnn"} <= set(worker)
    assert "tensorflow" not in worker
    assert {"tensorflow", "keras", "mtcnn", "nvidia-cudnn-cu12"} <= set(gpu)
    assert "tensorflow-cpu" not in gpu
    # One resolution (uv.lock): what the API image has, the workers have at the same versions,
    # and the development venv (where the tests run) has the CPU worker's set.
    dev = _requirements("dev")
    for package, versions in api.items():
        assert worker[package] == gpu[package] == versions, package
    for package, versions in worker.items():
        assert dev[package] == versions, package


def test_the_api_image_runs_its_processes_without_the_pipeline(tmp_path: Path) -> None:
    """Import what the API image runs with every module outside its requirement set hidden:
    the API, the CLI (the migrate step's commands) and the Celery app of the I/O worker."""
    from importlib.metadata import packages_distributions

    allowed = {*_requirements("api"), "facesearch"}
    hidden = sorted(
        module
        for module, dists in packages_distributions().items()
        if module not in sys.stdlib_module_names
        and not {_normalise(dist) for dist in dists} & allowed
    )
    assert "tensorflow" in hidden
    assert "keras" in hidden
    code = (
        "import importlib, importlib.abc, sys\n"
        f"hidden = set({hidden!r})\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in hidden:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "for module in sys.argv[1:]:\n"
        "    importlib.import_module(module)\n"
        "from cli.main import cli\n"
        "cli.main(['models', 'list'], standalone_mode=False)\n"
    )
    modules = ["api.wsgi", "cli.main", "workers.celery_app", "workers.pipeline.weights"]
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


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".git", ".venv", "var", ".env", "**/__pycache__"):
        assert required in patterns
    # pyproject.toml names README.md as the readme: `pip install .` needs it in the context;
    # the image installs from requirements/.
    kept = {"README.md", "*.md", "pyproject.toml", "alembic.ini", "migrations", "requirements"}
    assert not kept & patterns
    assert not {p for p in patterns if p.startswith("requirements") or p.endswith(".txt")}


def test_milvus_runs_with_the_settings_the_test_server_has(
    services: dict[str, dict[str, Any]],
) -> None:
    """The compose file's Milvus reads deploy/milvus/user.yaml, and the real server the tests
    start (tests/milvus_server.py) is given exactly those settings: the index tests measure
    the server as it is deployed."""
    assert "./deploy/milvus/user.yaml:/milvus/configs/user.yaml:ro" in services["milvus"]["volumes"]

    def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                out |= flat(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = str(value).lower()
        return out

    settings = flat(yaml.safe_load((ROOT / "deploy" / "milvus" / "user.yaml").read_text()))
    assert settings == {key: str(value).lower() for key, value in SERVER_CONFIG.items()}
    assert settings["queryNode.segcore.interimIndex.enableIndex"] == "false"
