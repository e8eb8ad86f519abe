"""Answers without polling: a request may wait a little for its job to end.

- ``POST /v1/searches`` reads RFC 7240's ``Prefer: wait=N`` (:func:`preferred_wait`);
- ``GET /v1/jobs/{id}`` reads ``?wait=N`` (a long poll).

:func:`wait_for_job` closes the request's database session first (its connection goes back
to the pool: a waiter holds none), then waits in this process's :class:`core.notify.JobWaiters`,
which re-reads the job's row with a short session of its own whenever it is woken.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request
from sqlalchemy import select
from werkzeug.http import parse_list_header

from api.context import close_db, services
from core.notify import MAX_WAIT_S, JobWaiters
from models import Job

EXTENSION = "facesearch_waiters"
PREFER = "Prefer"
PREFERENCE_APPLIED = "Preference-Applied"
_DELTA_SECONDS = re.compile(r"[0-9]+")
_lock = threading.Lock()
_PREFERS_WAIT_ATTR = "_facesearch_prefers_wait"
F = TypeVar("F", bound=Callable[..., Any])


def honours_prefer_wait(view: F) -> F:
    """Mark a view that reads ``Prefer: wait=N`` (for the document, ``api.openapi``)."""
    setattr(view, _PREFERS_WAIT_ATTR, True)
    return view


def reads_prefer_wait(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, _PREFERS_WAIT_ATTR, False))


def preferred_wait() -> int | None:
    """The request's ``Prefer: wait=N`` in seconds, at most :data:`MAX_WAIT_S`; None when it
    asks for no wait or an invalid one (RFC 7240: a preference that is not understood is
    ignored, and only the first instance of a preference counts)."""
    for header in request.headers.getlist(PREFER):
        for item in parse_list_header(header):
            preference = item.split(";", 1)[0]  # parameters after ';' mean nothing for wait
            name, _, value = preference.partition("=")
            if name.strip().lower() != "wait":
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]  # a quoted-string is allowed for any preference's value
            if not _DELTA_SECONDS.fullmatch(value):
                return None
            digits = value.lstrip("0") or "0"
            # A long number is simply "the most" (and never reaches int()'s digit limit).
            return MAX_WAIT_S if len(digits) > 4 else min(int(digits), MAX_WAIT_S)
    return None


def waiters() -> JobWaiters:
    """This app's waiters (one set per process: gunicorn builds the app in each worker)."""
    found: JobWaiters | None = current_app.extensions.get(EXTENSION)
    if found is None:
        with _lock:
            found = current_app.extensions.get(EXTENSION)
            if found is None:
                settings = services().settings
                found = JobWaiters(settings.broker_url, max_waiters=settings.api_max_waiters)
                current_app.extensions[EXTENSION] = found
    return found


def _job_finished(job_id: str) -> bool:
    # A fresh session per read, closed at once: between reads no connection is held.
    with services().sessions() as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
    return status is None or status.finished  # a job erased meanwhile: nothing to wait for


def wait_for_job(job_id: str, wait_s: float) -> bool | None:
    """Wait up to ``wait_s`` for the job to end: True if it did, False if not yet, None when
    this process already has its most waiters (answer at once, as without a wait).

    The request's session is closed first: read what the answer needs again afterwards."""
    close_db()
    return waiters().wait(job_id, wait_s, lambda: _job_finished(job_id))
