"""``facesearch webhooks resend-due``: queue the deliveries whose task was lost.

Run it from cron (every few minutes) or after a broker outage: a delivery is queued after
the commit that records it, and a broker that is down at that moment, or a worker killed in
the middle of an attempt, leaves it pending with no task to make its next attempt.
"""

from __future__ import annotations

import click


@click.group()
def webhooks() -> None:
    """Webhook deliveries."""


@webhooks.command("resend-due")
@click.option(
    "--grace", "grace_s", default=60.0, show_default=True, help="Seconds overdue before a resend."
)
def resend_due_command(grace_s: float) -> None:
    """Queue the next attempt of every pending delivery that is overdue."""
    from core.queue import make_celery  # noqa: PLC0415 (lazy: keeps `--help` light)
    from core.settings import get_settings  # noqa: PLC0415
    from models.db import make_engine, make_session_factory  # noqa: PLC0415
    from workers.webhooks import resend_due  # noqa: PLC0415

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        count = resend_due(
            sessions=make_session_factory(engine), celery=make_celery(settings), grace_s=grace_s
        )
    finally:
        engine.dispose()
    click.echo(f"{count} deliveries queued")
