"""Generate the typed Python client (``clients/python/facesearch-client``) from the API's OpenAPI
document, as the app builds it (``make client``). ``tests/test_contract.py`` generates it into a
temporary folder the same way and compares: the committed client is the document's.

Only the package is generated (``--meta none``); its ``pyproject.toml`` and README are written
by hand and kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGE = "facesearch_client"
CLIENT = HERE / "facesearch-client"
CONFIG = HERE / "generator.yaml"


def document() -> dict[str, object]:
    """The OpenAPI document of an app on the default settings (an embedded data folder of its
    own): what `GET /openapi.json` answers on a server left at its defaults."""
    sys.path.insert(0, str(REPO))
    from api import create_app  # noqa: PLC0415 (the repository is on the path only now)
    from api.context import EXTENSION  # noqa: PLC0415
    from core.settings import Settings  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(_env_file=None, data_dir=Path(data_dir)))  # type: ignore[call-arg]
        try:
            spec = app.spec
        finally:
            app.extensions[EXTENSION].close()
    assert isinstance(spec, dict)
    return spec


def generate(package_dir: Path) -> None:
    """Write the client's package to ``package_dir`` (replaced if it exists)."""
    with tempfile.TemporaryDirectory() as work:
        spec_path = Path(work) / "openapi.json"
        spec_path.write_text(json.dumps(document(), indent=2, sort_keys=True))
        subprocess.run(
            [
                str(Path(sys.executable).parent / "openapi-python-client"),
                "generate",
                "--path",
                str(spec_path),
                "--config",
                str(CONFIG),
                "--meta",
                "none",
                "--output-path",
                str(package_dir),
                "--overwrite",
            ],
            check=True,
            capture_output=True,
            text=True,
            # The post hooks run `ruff` by name: this interpreter's own, whether or not its
            # environment is activated (`make test` in CI runs .venv/bin/pytest directly).
            env={
                **os.environ,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
        )
    # PEP 561: the package is typed (the generator writes the marker only with metadata).
    (package_dir / "py.typed").write_text("# Marker file for PEP 561\n")


if __name__ == "__main__":
    generate(CLIENT / PACKAGE)
    print(f"generated {CLIENT / PACKAGE}")
