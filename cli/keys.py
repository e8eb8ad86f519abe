"""``facesearch keys`` and ``facesearch galleries``: tenancy from the command line.

They talk to the database directly (DATABASE_URL), so the first admin key can be made before
any key exists, on the machine that runs the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session

from models import Scope


@contextmanager
def _session() -> Iterator[Session]:
    from core.settings import get_settings  # noqa: PLC0415 (lazy: keeps `--help` light)
    from models.db import make_engine, make_session_factory, session_scope  # noqa: PLC0415

    engine = make_engine(get_settings().database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


@click.group()
def keys() -> None:
    """API keys: create, list, revoke."""


@keys.command("create")
@click.option(
    "--gallery",
    "gallery_name",
    default=None,
    help="The gallery the key is bound to (made if it does not exist).",
)
@click.option(
    "--all-galleries", is_flag=True, help="An admin key for every gallery (instead of --gallery)."
)
@click.option(
    "--scope",
    type=click.Choice([s.value for s in Scope]),
    required=True,
    help="search < write < admin; each includes the ones before.",
)
@click.option("--name", default=None, help="What the key is for, to recognise it later.")
def create_command(
    gallery_name: str | None, all_galleries: bool, scope: str, name: str | None
) -> None:
    """Make a key and print it, alone, on the last line (shown this once)."""
    from services.galleries import GalleryError, find_gallery, get_or_create_gallery  # noqa: PLC0415
    from services.keys import KeyRequestError, create_key  # noqa: PLC0415

    if all_galleries == (gallery_name is not None):
        raise click.UsageError("give exactly one of --gallery NAME and --all-galleries")
    with _session() as session:
        gallery = None
        if gallery_name is not None:
            existed = find_gallery(session, gallery_name) is not None
            try:
                gallery = get_or_create_gallery(session, gallery_name)
            except GalleryError as exc:
                raise click.ClickException(str(exc)) from exc
            if not existed:
                click.echo(f"gallery {gallery.name!r} created (id {gallery.id})")
        try:
            row, key = create_key(session, scope=Scope(scope), gallery=gallery, name=name)
        except KeyRequestError as exc:
            raise click.ClickException(str(exc)) from exc
        where = f"gallery {gallery.name!r}" if gallery else "every gallery"
        click.echo(f"key fsk_{row.prefix} ({scope}, {where}); it is shown only now:")
    click.echo(key)


@keys.command("list")
@click.option("--gallery", "gallery_name", default=None, help="Only this gallery's keys.")
def list_command(gallery_name: str | None) -> None:
    """Every key (never the key itself): prefix, scope, gallery, name, last use, state."""
    from sqlalchemy import select  # noqa: PLC0415

    from models import Gallery  # noqa: PLC0415
    from services.galleries import find_gallery  # noqa: PLC0415
    from services.keys import list_keys  # noqa: PLC0415

    with _session() as session:
        gallery_id = None
        if gallery_name is not None:
            gallery = find_gallery(session, gallery_name)
            if gallery is None:
                raise click.ClickException(f"there is no gallery {gallery_name!r}")
            gallery_id = gallery.id
        names: dict[int, str] = dict(session.execute(select(Gallery.id, Gallery.name)).all())
        rows = list_keys(session, gallery_id=gallery_id)
        click.echo(
            f"{'prefix':<13} {'scope':<7} {'gallery':<20} {'last used':<20} {'state':<8} name"
        )
        for row in rows:
            used = row.last_used_at.strftime("%Y-%m-%d %H:%M") if row.last_used_at else "never"
            state = "revoked" if row.revoked_at else "active"
            where = names.get(row.gallery_id, "?") if row.gallery_id else "(every)"
            click.echo(
                f"fsk_{row.prefix:<9} {row.scope.value:<7} {where:<20} {used:<20} {state:<8} "
                f"{row.name or ''}"
            )


@keys.command("revoke")
@click.argument("prefix")
def revoke_command(prefix: str) -> None:
    """Revoke the key whose visible start is PREFIX (fsk_1a2b3c4d); its next request fails."""
    from services.keys import find_key, revoke_key  # noqa: PLC0415

    with _session() as session:
        row = find_key(session, prefix)
        if row is None:
            raise click.ClickException(f"there is no key {prefix}")
        revoke_key(row)
        click.echo(f"key fsk_{row.prefix} revoked")


@click.group()
def galleries() -> None:
    """Galleries (tenants): create, list."""


@galleries.command("create")
@click.argument("name")
def gallery_create_command(name: str) -> None:
    """Make an empty gallery named NAME."""
    from services.galleries import GalleryError, create_gallery  # noqa: PLC0415

    with _session() as session:
        try:
            gallery = create_gallery(session, name)
        except GalleryError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"gallery {gallery.name!r} created (id {gallery.id})")


@galleries.command("list")
def gallery_list_command() -> None:
    """Every gallery with its id."""
    from services.galleries import list_galleries  # noqa: PLC0415

    with _session() as session:
        for gallery in list_galleries(session):
            click.echo(f"{gallery.id:>6}  {gallery.name}")
