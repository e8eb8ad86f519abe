"""``--wait`` for the commands that queue a job (``reindex``, ``reembed``): poll it in
Postgres, the source of truth for its status, until it finishes."""

from __future__ import annotations

import time

import click
from sqlalchemy.orm import Session, sessionmaker

from models import Job
from models.db import session_scope


def follow_job(
    sessions: sessionmaker[Session], job_id: str, *, every_s: float, show_progress: bool = False
) -> None:
    """Print the job's end (its result, or its error) once it finishes; with
    ``show_progress``, its phase and count at every poll before that."""
    while True:
        with session_scope(sessions) as session:
            job = session.get_one(Job, job_id)
            if job.status.finished:
                click.echo(f"{job.status.value}: {job.result or job.error}")
                return
            if show_progress:
                click.echo(f"{job.params.get('phase')}: {job.done + job.failed}/{job.total}")
        time.sleep(every_s)
