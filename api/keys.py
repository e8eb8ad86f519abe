"""API keys: made, listed and revoked by administrators.

An admin key bound to a gallery manages that gallery's keys; an admin key for every gallery
manages all keys and alone may make another such key.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask.sansio.blueprints import BlueprintSetupState
from sqlalchemy import select
from werkzeug.routing import BaseConverter

from api import schemas
from api.auth import gallery_id, principal, requires
from api.context import db
from api.errors import ApiError
from api.openapi import operation
from core.logging import get_logger
from models import ApiKey, Gallery, Scope
from services.galleries import find_gallery
from services.keys import KeyRequestError, create_key, find_key, list_keys, revoke_key

log = get_logger(__name__)
bp = APIBlueprint("keys", __name__, url_prefix="/v1/keys", tag="Keys")

# A key is named by its visible start (`fsk_1a2b3c4d` or `1a2b3c4d`, services.keys); any other
# path part is a key that does not exist (404), except `self`: `/v1/keys/self` is GET's alone
# (DELETE there is a 405, and `Allow` says so).
KEY_PREFIX_PATTERN = "(?:fsk_)?[0-9a-f]{8}"


class KeyPrefixConverter(BaseConverter):
    regex = "(?!self$)[^/]+"


# Before the routes below: a blueprint's deferred set-up runs in the order it was recorded.
@bp.record_once
def _add_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("key_prefix", KeyPrefixConverter)


def serialize_key(
    key: ApiKey, gallery_name: str | None, *, secret: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": key.id,
        "prefix": f"fsk_{key.prefix}",
        "name": key.name,
        "scope": key.scope.value,
        "gallery": gallery_name,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }
    if secret is not None:
        body["key"] = secret
    return body


def _gallery_names() -> dict[int, str]:
    return dict(db().execute(select(Gallery.id, Gallery.name)).all())


@bp.post("")
@bp.input(schemas.KeyIn, arg_name="body")
@bp.output(schemas.KeyOut, status_code=201)
@bp.doc(
    summary="Make an API key",
    description="The answer holds the key itself (`key`), shown this once: only its hash is "
    "stored. The key is bound to the request's gallery unless `gallery` names another "
    "(admin keys for every gallery only) or `all_galleries` is true.",
    responses={201: "Made", 404: "No such gallery", 422: "Invalid input"},
)
@requires(Scope.ADMIN)
def create(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    caller = principal()
    session = db()
    gallery: Gallery | None
    if body["all_galleries"]:
        if not caller.all_galleries:
            raise ApiError(403, "only an admin key for every gallery may make another one")
        if body.get("gallery"):
            raise ApiError(422, "name a gallery or ask for all_galleries, not both")
        gallery = None
    elif body.get("gallery") and caller.all_galleries:
        gallery = find_gallery(session, body["gallery"])
        if gallery is None:
            raise ApiError(404, f"there is no gallery {body['gallery']!r}", code="no_such_gallery")
    else:
        gallery = session.get(Gallery, gallery_id())
        if body.get("gallery") and gallery is not None and body["gallery"] != gallery.name:
            raise ApiError(404, f"there is no gallery {body['gallery']!r}", code="no_such_gallery")
    try:
        row, secret = create_key(
            session, scope=Scope(body["scope"]), gallery=gallery, name=body.get("name")
        )
    except KeyRequestError as exc:
        raise ApiError(422, str(exc)) from exc
    session.commit()
    log.info("api key created", prefix=row.prefix, scope=row.scope.value, by=caller.prefix)
    return serialize_key(row, gallery.name if gallery else None, secret=secret), 201


@bp.get("")
@bp.output(schemas.KeyListOut)
@bp.doc(summary="API keys (never the keys themselves): the gallery's, or every one")
@requires(Scope.ADMIN)
def list_all() -> dict[str, Any]:
    caller = principal()
    rows = list_keys(db(), gallery_id=None if caller.all_galleries else gallery_id())
    names = _gallery_names()
    return {
        "keys": [serialize_key(k, names.get(k.gallery_id) if k.gallery_id else None) for k in rows]
    }


@bp.get("/self")
@bp.output(schemas.KeyOut)
@bp.doc(
    summary="The key this request was made with: its scope and gallery",
    description="Any valid key may read itself (never the key itself), e.g. for a client "
    "to show what it may do before it tries.",
)
@requires(Scope.SEARCH)
def whoami() -> dict[str, Any]:
    row = db().get(ApiKey, principal().key_id)
    if row is None:  # revoked and deleted between the check and now
        raise ApiError(404, "this key no longer exists")
    names = _gallery_names()
    return serialize_key(row, names.get(row.gallery_id) if row.gallery_id else None)


@bp.delete("/<key_prefix:prefix>")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Revoke an API key: its next request is refused",
    description="`prefix` is the key's visible start (`fsk_1a2b3c4d`). Revoking twice is fine.",
    responses={404: "No such key"},
)
@operation(
    parameters=[
        {
            "name": "prefix",
            "in": "path",
            "required": True,
            "description": "the key's visible start, with or without `fsk_` (`"
            f"{KEY_PREFIX_PATTERN}`); anything else names no key (404)",
            "schema": {"type": "string", "pattern": "^(?!self$)[^/]+$"},
            "example": "fsk_1a2b3c4d",
        }
    ]
)
@requires(Scope.ADMIN)
def revoke(prefix: str) -> tuple[str, int]:
    caller = principal()
    session = db()
    row = find_key(session, prefix, gallery_id=None if caller.all_galleries else gallery_id())
    if row is None:
        raise ApiError(404, f"there is no key {prefix}")
    revoke_key(row)
    session.commit()
    log.info("api key revoked", prefix=row.prefix, by=caller.prefix)
    return "", 204
