"""How a report says which command made it, without the secrets on that command line: an
API key passed as ``--key`` would otherwise be written into a committed report."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

# Options whose value is a secret; the report shows where the value came from instead.
SECRET_OPTIONS = {"--key": "$FACESEARCH_KEY"}


def redacted(argv: Sequence[str]) -> list[str]:
    """``argv`` with every secret option's value replaced (``--key X``, ``--key=X``)."""
    out: list[str] = []
    hide_next: str | None = None
    for arg in argv:
        if hide_next is not None:
            out.append(hide_next)
            hide_next = None
            continue
        name, equals, _ = arg.partition("=")
        if name in SECRET_OPTIONS:
            if equals:
                out.append(f"{name}={SECRET_OPTIONS[name]}")
                continue
            hide_next = SECRET_OPTIONS[name]
        out.append(arg)
    return out


def command_line(argv: Sequence[str] | None = None) -> str:
    """The ``facesearch`` command of this process (or of ``argv``'s options), redacted."""
    options = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["facesearch", *redacted(options)])
