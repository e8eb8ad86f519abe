"""``facesearch reembed``: embed every stored image with the configured face recipe, then
serve searches from it (``services.reembed``, ``workers.reembed``)."""

from __future__ import annotations

import click

from cli.follow import follow_job
from core.settings import get_settings
from models import version_name
from models.db import make_engine, make_session_factory, session_scope
from services.reembed import REEMBED_TASK, ReembedRefusedError, create_reembed_job, plan


@click.command()
@click.option(
    "--dry-run", is_flag=True, help="Say how many images and faces would be embedded again."
)
@click.option("--wait/--no-wait", default=False, help="Poll the job until it finishes.")
def reembed(dry_run: bool, wait: bool) -> None:
    """Re-embed the gallery with the configured recipe (FACE_MARGIN, FACE_ALIGN, FACE_FLIP)
    on the bulk queue; searches switch to it once every image is done and indexed."""
    from core.queue import make_celery  # noqa: PLC0415 (keeps `facesearch --help` light)

    settings = get_settings()
    version = version_name(
        settings.model_name,
        margin=settings.face_margin,
        align=settings.face_align,
        flip=settings.face_flip,
    )
    sessions = make_session_factory(make_engine(settings.database_url))
    with session_scope(sessions) as session:
        found = plan(session, version)
    click.echo(f"configured embedding version: {version}")
    click.echo(f"searches served from: {found.served or '(none recorded yet)'}")
    click.echo(
        f"would embed {found.images} image(s) again and replace {found.faces} face(s) "
        "of other versions"
    )
    if dry_run:
        return
    if found.images == 0 and found.faces == 0 and found.served in (None, version):
        click.echo("nothing to do")
        return
    try:
        with session_scope(sessions) as session:
            job_id = create_reembed_job(session, version).id
    except ReembedRefusedError as exc:
        raise click.ClickException(str(exc)) from None
    make_celery(settings).send_task(REEMBED_TASK, kwargs={"job_id": job_id})
    click.echo(f"reembed job {job_id} queued")
    if wait:
        follow_job(sessions, job_id, every_s=5, show_progress=True)
