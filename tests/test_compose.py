"""Offline checks of the distributed deployment: docker-compose.yml, Dockerfile, .dockerignore.

No Docker engine is needed. The compose file is parsed, interpolated with its own defaults
(as `docker compose config` would with an empty environment), checked against the promises
in docs/distributed.md, and validated against the Compose Specification's JSON schema
(vendored in tests/data/compose-spec.json, Apache-2.0, see tests/data/compose-spec.LICENSE).
If a `docker compose` or `docker-compose` binary is on PATH, `config -q` is run as well.
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

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCHEMA_FILE = Path(__file__).parent / "data" / "compose-spec.json"

INFRA_WITH_HEALTHCHECK = ("postgres", "redis", "minio", "milvus", "milvus-etcd", "milvus-minio")
APP_SERVICES = ("migrate", "api", "worker", "worker-cpu", "searcher", "io-worker", "indexer")
# The workers that load the face pipeline (and so mount the weights).
PIPELINE_WORKERS = ("worker", "worker-cpu", "searcher")
WORKERS = (*PIPELINE_WORKERS, "io-worker", "indexer")
ONE_SHOT = ("migrate", "minio-init")
EXPECTED_SERVICES = {
    *INFRA_WITH_HEALTHCHECK,
    *APP_SERVICES,
    "minio-init",
    "flower",
}

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


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(raw_text: str) -> dict[str, Any]:
    """The compose file as `docker compose config` sees it with no variables set."""
    document = yaml.safe_load(raw_text)
    assert isinstance(document, dict)
    return interpolate(document, env={})


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


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

    argv = _command(service)
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


# --- the compose file -----------------------------------------------------------------------------


def test_services_are_the_documented_ones(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_every_variable_has_a_default(raw_text: str) -> None:
    """`docker compose config` must work from a fresh clone with no .env at all."""
    uncommented = "\n".join(
        line.split(" #")[0] for line in raw_text.splitlines() if not line.lstrip().startswith("#")
    )
    for m in _INTERPOLATION.finditer(uncommented):
        if m["escaped"]:
            continue
        assert m["invalid"] is None, f"stray '$' near: {uncommented[m.start() : m.start() + 40]!r}"
        name = m["braced"] or m["named"]
        assert m["op"] in (":-", "-"), f"${{{name}}} has no default"
        assert "$" not in (m["arg"] or ""), f"nested interpolation in ${{{name}}}"


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
    assert "pg_isready" in _health_test(services["postgres"])
    assert "redis-cli ping" in _health_test(services["redis"])
    assert "/minio/health/live" in _health_test(services["minio"])
    assert "/minio/health/live" in _health_test(services["milvus-minio"])
    assert "etcdctl endpoint health" in _health_test(services["milvus-etcd"])
    assert ":9091/healthz" in _health_test(services["milvus"])
    assert ":8000/readyz" in _health_test(services["api"])


def test_published_ports_bind_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            else:
                parts = str(port).split(":")
                host_ip = parts[0] if len(parts) == 3 else None
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond loopback"
    assert published >= 3
    assert any("8000" in str(p) for p in services["api"]["ports"])
    assert "ports" not in services["redis"]


def test_milvus_follows_the_upstream_standalone_layout(
    services: dict[str, dict[str, Any]],
) -> None:
    milvus = services["milvus"]
    assert _command(milvus) == ["milvus", "run", "standalone"]
    assert milvus["image"].startswith("milvusdb/milvus:")
    env = milvus["environment"]
    assert env["ETCD_ENDPOINTS"] == "milvus-etcd:2379"
    assert env["MINIO_ADDRESS"] == "milvus-minio:9000"
    # Milvus' MinIO is its own, not the app's, and uses the same credentials Milvus is given.
    milvus_minio = services["milvus-minio"]["environment"]
    assert milvus_minio["MINIO_ROOT_USER"] == env["MINIO_ACCESS_KEY_ID"]
    assert milvus_minio["MINIO_ROOT_PASSWORD"] == env["MINIO_SECRET_ACCESS_KEY"]
    assert set(_depends_on(milvus)) == {"milvus-etcd", "milvus-minio"}


def test_app_services_share_one_configuration(services: dict[str, dict[str, Any]]) -> None:
    envs = [services[name]["environment"] for name in APP_SERVICES]
    first = envs[0]
    assert first["APP_ENV"] == "production"
    assert first["LOG_JSON"] == "true"
    assert first["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert first["DATABASE_URL"].endswith("@postgres:5432/facesearch")
    assert first["BROKER_URL"] == "redis://redis:6379/0"
    assert first["STORAGE_URL"].startswith("s3://")
    assert first["STORAGE_URL"].endswith("@minio:9000/facesearch")
    assert first["MILVUS_URI"] == "http://milvus:19530"
    assert first["MODEL_NAME"] == "facenet-20170512-110547"
    for env in envs:
        shared = {k: v for k, v in env.items() if k != "TF_FORCE_GPU_ALLOW_GROWTH"}
        assert shared == first
    # The credentials in the URLs are the ones the servers are started with.
    pg = services["postgres"]["environment"]
    assert first["DATABASE_URL"] == (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{pg['POSTGRES_DB']}"
    )
    minio = services["minio"]["environment"]
    assert first["STORAGE_URL"].startswith(
        f"s3://{minio['MINIO_ROOT_USER']}:{minio['MINIO_ROOT_PASSWORD']}@"
    )
    assert len(minio["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses shorter secrets
    # minio-init creates the very bucket STORAGE_URL names, with the same credentials.
    init = services["minio-init"]
    assert init["environment"]["MC_HOST_local"] == (
        f"http://{minio['MINIO_ROOT_USER']}:{minio['MINIO_ROOT_PASSWORD']}@minio:9000"
    )
    bucket = first["STORAGE_URL"].rsplit("/", 1)[1]
    assert _command(init)[-1] == f"local/{bucket}"


def test_app_services_are_built_from_the_one_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    variants = {}
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert build["context"] == "."
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        variants[name] = build["args"]["TF_VARIANT"]
    assert variants == {
        "migrate": "cpu",
        "api": "cpu",
        "worker": "gpu",
        "worker-cpu": "cpu",
        "searcher": "cpu",
        "io-worker": "cpu",
        "indexer": "cpu",
    }
    # Two variants, two tags: a CPU build must never overwrite the GPU image or back.
    assert services["worker"]["image"] != services["api"]["image"]
    assert len({services[name]["image"] for name in APP_SERVICES if name != "worker"}) == 1


def test_migrate_is_a_one_shot_that_everything_waits_for(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services["migrate"]
    command = " ".join(_command(migrate))
    assert "alembic upgrade head" in command
    assert "facesearch models pull" in command
    assert migrate["restart"] == "no"
    assert services["minio-init"]["restart"] == "no"
    for name in ("api", *WORKERS):
        deps = _depends_on(services[name])
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["milvus"]["condition"] == "service_healthy", name
    for name in ("api", *PIPELINE_WORKERS):
        deps = _depends_on(services[name])
        assert deps["minio-init"]["condition"] == "service_completed_successfully", name
        assert deps["minio"]["condition"] == "service_healthy", name


def test_api_runs_under_gunicorn(services: dict[str, dict[str, Any]]) -> None:
    argv = _command(services["api"])
    assert argv[0] == "gunicorn"
    assert argv[-1] == "api.wsgi:app"
    assert _option(argv, "-b", "--bind") == "0.0.0.0:8000"


def test_workers_by_workload(services: dict[str, dict[str, Any]]) -> None:
    """Searches, bulk ingest, I/O and index writes each have a service (README, "Workers")."""
    for name in WORKERS:
        argv = _command(services[name])
        assert argv[:2] == ["facesearch", "worker"], name
        assert _option(argv, "--role"), f"{name} must say its role"
        assert "container_name" not in services[name] or name == "indexer", name
    assert _queues(services["worker"]) == _queues(services["worker-cpu"]) >= {"ingest"}
    assert _queues(services["searcher"]) == {"search"}
    assert _queues(services["io-worker"]) == {"io"}
    consumed = set().union(*(_queues(services[name]) for name in WORKERS))
    assert consumed >= {"search", "ingest", "io", "index"}
    # The light worker has no weights to mount: it never loads TensorFlow.
    assert "volumes" not in services["io-worker"]
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert "profiles" not in services["worker"]


def test_worker_reserves_the_gpu(services: dict[str, dict[str, Any]]) -> None:
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert services["worker"]["environment"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    for name, service in services.items():
        if name != "worker":
            assert "devices" not in str(service.get("deploy", {})), name


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


def test_flower_is_behind_basic_auth(services: dict[str, dict[str, Any]]) -> None:
    flower = services["flower"]
    auth = flower["environment"]["FLOWER_BASIC_AUTH"]
    user, _, password = auth.partition(":")
    assert user
    assert password
    assert "redis://redis:6379/0" in " ".join(_command(flower))


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        want = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == want, name


def test_data_lives_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            assert source in declared, f"{name} mounts {source!r}, not a named volume"
            used.add(source)
    assert used == declared
    assert "models:/models" in services["migrate"]["volumes"]
    for name in PIPELINE_WORKERS:
        assert "models:/models:ro" in services[name]["volumes"]
    for name in APP_SERVICES:
        assert services[name]["environment"]["MODEL_DIR"] == "/models"


def test_compose_spec_schema(compose: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed: schema validation skipped"
    )
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The schema check has teeth: an unknown key and a wrong type are both caught."""
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed: schema validation skipped"
    )
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["helthcheck"] = {}
    broken["services"]["indexer"]["depends_on"]["migrate"]["condition"] = "service_done"
    validator = jsonschema.validators.validator_for(schema)(schema)
    messages = " ".join(e.message for e in validator.iter_errors(broken))
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


def test_compose_cli_config() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` is installed "
            "(apt-get install docker-compose); the checks above still apply"
        )
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    result = subprocess.run(
        [*cli, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
