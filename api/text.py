"""Text a client sends is checked before anything reads it into a query or a row.

Postgres refuses a NUL character in text, psycopg cannot encode a lone surrogate, and no
label, name, file name, id or header value this API reads has a use for control characters.
So every piece of text in a request (query string, path, form fields, file names, JSON
keys and strings, and the headers the API reads) is checked once, before the view runs,
and a bad one is answered ``422`` naming where it was.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

from apiflask import APIFlask
from flask import request

from api.errors import ApiError

# Headers whose values the API reads (besides Authorization, which is matched against a
# strict pattern and answered 401 when it does not fit).
READ_HEADERS = ("Idempotency-Key", "Facesearch-Gallery", "Prefer")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
# Routes that parse their own form (a streamed archive may be larger than the request
# limit that parsing it here would apply): they check the form's text themselves.
OWN_FORM_ENDPOINTS = frozenset({"archives.upload_archive"})
CODE = "invalid_text"


def bad_character(text: str) -> str | None:
    """A description of the first character not allowed in ``text``, or None."""
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cc":
            return f"control character U+{ord(char):04X} at position {position}"
        if category == "Cs":
            return f"unpaired surrogate U+{ord(char):04X} at position {position}"
    return None


def check_text(text: str, where: str) -> str:
    """``text`` itself if it has no control character or unpaired surrogate; else 422."""
    problem = bad_character(text)
    if problem is not None:
        raise ApiError(
            422,
            f"{where}: text may not contain a {problem}",
            code=CODE,
            details={"field": where},
        )
    return text


def _json_texts(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield value, where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key, f"{where} key"
            yield from _json_texts(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_texts(item, f"{where}[{index}]")


def _form_texts() -> Iterator[tuple[str, str]]:
    for name, values in request.form.lists():
        yield name, "form field name"
        for value in values:
            yield value, f"form field {name}"
    for name, files in request.files.lists():
        yield name, "form field name"
        for file in files:
            if file.filename:
                yield file.filename, f"file name of part {name}"


def request_texts() -> Iterator[tuple[str, str]]:
    """Every piece of text in the request that the API may read, with where it was."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            yield value, f"path parameter {name}"
    for name, values in request.args.lists():
        yield name, "query parameter name"
        for value in values:
            yield value, f"query parameter {name}"
    for header in READ_HEADERS:
        value = request.headers.get(header)
        if value is not None:
            yield value, f"header {header}"
    if request.is_json:
        yield from _json_texts(request.get_json(silent=True), "body")
    elif request.mimetype in FORM_TYPES and request.endpoint not in OWN_FORM_ENDPOINTS:
        yield from _form_texts()


def check_request_text() -> None:
    if request.url_rule is None:
        return  # no route matched: the 404 or 405 comes first, whatever the request holds
    for text, where in request_texts():
        check_text(text, where)


def install(app: APIFlask) -> None:
    """Check the request's text before any view runs (after the key check: an anonymous
    caller learns nothing from a 422 it could not learn from a 401)."""
    app.before_request(check_request_text)
