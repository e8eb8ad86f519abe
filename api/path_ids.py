"""Ids in paths: an ``<int:...>`` path part is a database id, so past BIGINT it names nothing.

Werkzeug's ``int`` takes any number of digits, and Postgres refuses a number past BIGINT
with an error, not an empty answer: such a path would reach the database and fail. Checked
once here, after the key check and before any view runs, it is answered as any id that does
not exist: 404.
(A bounded converter would do it too, but Werkzeug then answers some methods 405 instead.)
"""

from __future__ import annotations

from apiflask import APIFlask
from flask import request

from api.errors import ApiError

MAX_ID = 2**63 - 1  # BIGINT, the widest id column


def _refuse_ids_past_bigint() -> None:
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and value > MAX_ID:
            what = name.removesuffix("_id").replace("_", " ")
            raise ApiError(404, f"there is no {what} {value}")


def install(app: APIFlask) -> None:
    app.before_request(_refuse_ids_past_bigint)
