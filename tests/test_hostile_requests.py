"""What a generated fuzzer misses: tampered cursors, NUL and control characters in every
kind of text a request carries, and multipart edge cases. Each is a 4xx that says what was
wrong, never a 500."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Image, Job
from tests.test_api import error_of, jpeg


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def assert_refused(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    return error_of(response)


# --- cursors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/v1/images", ["x"]),  # was int("x"): a 500
        ("/v1/images", ["1"]),
        ("/v1/images", [True]),
        ("/v1/images", [1.5]),
        ("/v1/images", [-1]),
        ("/v1/images", [2**64]),  # past a BIGINT
        ("/v1/images", [None]),
        ("/v1/images", [[1]]),
        ("/v1/images", {"id": 1}),
        ("/v1/jobs", ["2026-01-01T00:00:00+00:00", 5]),  # a number for the job id: a 500
        ("/v1/jobs", ["2026-01-01T00:00:00+00:00", ["x"]]),
        ("/v1/jobs", [5, "id"]),
        ("/v1/jobs", ["not a time", "id"]),
        ("/v1/jobs", ["2026-01-01T00:00:00+00:00", "a\u0000b"]),  # NUL reaching Postgres
        ("/v1/jobs", ["2026-01-01T00:00:00+00:00"]),
        ("/v1/labels", [5]),
        ("/v1/labels", ["Ada\u0000"]),
        ("/v1/labels", ["\ud800"]),  # a lone surrogate: not encodable
    ],
)
def test_a_tampered_cursor_is_a_422(client: FlaskClient, path: str, key: Any) -> None:
    error = assert_refused(client.get(path, query_string={"cursor": cursor_of(key)}))
    assert error["code"] == "invalid_cursor"
    assert "cursor" in error["message"]


@pytest.mark.parametrize(
    "cursor",
    ["%%%", "bm90IGpzb24", "W10", "/w==", "[" * 5000, cursor_of("[" * 100_000)],
)
def test_a_cursor_that_is_not_one_is_a_422(client: FlaskClient, cursor: str) -> None:
    for path in ("/v1/images", "/v1/jobs", "/v1/labels"):
        assert_refused(client.get(path, query_string={"cursor": cursor}))


def test_a_deeply_nested_cursor_is_a_422(client: FlaskClient) -> None:
    deep = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    assert_refused(client.get("/v1/images", query_string={"cursor": deep}))


def test_real_cursors_still_page(client: FlaskClient) -> None:
    for seed in range(3):
        response = client.post(
            "/v1/images",
            data={"file": (io.BytesIO(jpeg(seed)), f"{seed}.jpg"), "label": f"P{seed}"},
            content_type="multipart/form-data",
        )
        assert response.status_code == 202
    for path in ("/v1/images", "/v1/jobs", "/v1/labels"):
        seen, cursor = 0, None
        while True:
            query = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            body = client.get(path, query_string=query).get_json()
            seen += len(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == 3, path


# --- NUL and control characters in every kind of text ------------------------------------

BAD_TEXT = [
    "a\u0000b",  # NUL: Postgres refuses it in text
    "a\u0001b",
    "a\u001fb",
    "a\u007fb",  # DEL
    "a\u0085b",  # a C1 control (NEL)
    "line\nbreak",
]


@pytest.mark.parametrize("text", BAD_TEXT)
def test_control_characters_in_a_label_are_a_422(
    client: FlaskClient, session: Session, text: str
) -> None:
    response = client.post(
        "/v1/images",
        data={"file": (io.BytesIO(jpeg(1)), "x.jpg"), "label": text},
        content_type="multipart/form-data",
    )
    error = assert_refused(response)
    assert error["code"] == "invalid_text"
    assert "form field label" in error["message"]
    assert "control character" in error["message"]
    assert session.scalar(select(Job.id)) is None
    assert session.scalar(select(Image.id)) is None


@pytest.mark.parametrize("text", BAD_TEXT)
def test_control_characters_in_a_file_name_are_a_422(client: FlaskClient, text: str) -> None:
    for path in ("/v1/images", "/v1/searches"):
        response = client.post(
            path,
            data={"file": (io.BytesIO(jpeg(1)), f"{text}.jpg")},
            content_type="multipart/form-data",
        )
        error = assert_refused(response)
        # A line break ends the part's header: the part is then no file at all.
        assert "file name" in error["message"] or "\n" in text


def test_control_characters_in_an_archive_file_name_are_a_422(client: FlaskClient) -> None:
    response = client.post(
        "/v1/archives",
        data={"file": (io.BytesIO(b"\x1f\x8b" + b"\x00" * 64), "a\u0000.tgz")},
        content_type="multipart/form-data",
    )
    assert_refused(response)
    raw = client.post(
        "/v1/archives?filename=a%00.tgz",
        data=b"\x1f\x8b" + b"\x00" * 64,
        content_type="application/octet-stream",
    )
    assert "query parameter filename" in assert_refused(raw)["message"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/images", {"label": "Ada\u0000"}),
        ("/v1/images", {"status": "ready\u0000"}),
        ("/v1/labels", {"prefix": "A\u0000"}),
        ("/v1/jobs", {"kind": "\u0000"}),
        ("/v1/images", {"unknown\u0000name": "x"}),
        ("/v1/archives", {"label_from": "folder\u0000"}),
    ],
)
def test_control_characters_in_a_query_string_are_a_422(
    client: FlaskClient, path: str, query: dict[str, str]
) -> None:
    method = client.post if path == "/v1/archives" else client.get
    error = assert_refused(method(path, query_string=query))
    assert "query parameter" in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/a%00b",
        "/v1/jobs/a%00b/items",
        "/v1/searches/a%00b",
        "/v1/labels/Ada%00",
        "/v1/webhooks/a%00b",
        "/v1/deliveries/a%00b",
        "/v1/keys/fsk_%00",
    ],
)
def test_control_characters_in_a_path_are_a_422(client: FlaskClient, path: str) -> None:
    method = client.delete if path.startswith(("/v1/labels", "/v1/keys")) else client.get
    error = assert_refused(method(path))
    assert "path parameter" in error["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/keys", {"scope": "search", "name": "a\u0000b"}),
        ("/v1/keys", {"scope": "search", "name": "\ud800"}),
        ("/v1/webhooks", {"url": "https://hooks.example.com/\u0000", "events": []}),
        ("/v1/webhooks", {"url": "https://hooks.example.com/", "events": ["a\u0007"]}),
        ("/v1/archives", {"object_key": "imports/default/a\u0000.tgz"}),
        ("/v1/keys", {"scope": "search", "name\u0000": "x"}),
    ],
)
def test_control_characters_in_json_are_a_422(
    client: FlaskClient, path: str, body: dict[str, Any]
) -> None:
    # Sent as raw JSON: \u0000 and lone surrogates escaped exactly as a client may send them.
    data = json.dumps(body)
    error = assert_refused(client.post(path, data=data, content_type="application/json"))
    assert error["code"] == "invalid_text"
    assert "body" in error["message"]


@pytest.mark.parametrize("header", ["Idempotency-Key", "Facesearch-Gallery", "Prefer"])
def test_control_characters_in_a_header_we_read_are_a_422(client: FlaskClient, header: str) -> None:
    response = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(1)), "q.jpg")},
        content_type="multipart/form-data",
        headers={header: "a\u0000b"},
    )
    error = assert_refused(response)
    assert header in error["message"]


def test_an_idempotency_key_of_300_characters_is_a_422(client: FlaskClient) -> None:
    response = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(1)), "q.jpg")},
        content_type="multipart/form-data",
        headers={"Idempotency-Key": "k" * 300},
    )
    error = assert_refused(response)
    assert error["code"] == "invalid_idempotency_key"
    assert "200" in error["message"]


def test_a_tab_or_a_plain_unicode_label_is_still_fine_where_it_is_text(
    client: FlaskClient,
) -> None:
    # Control characters are refused; letters of any script are not.
    response = client.post(
        "/v1/images",
        data={"file": (io.BytesIO(jpeg(1)), "Łódź 東京.jpg"), "label": "Zoë Ñandú 李"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()


# --- multipart edge cases ---------------------------------------------------------------


def test_a_file_part_without_a_filename_is_a_4xx(client: FlaskClient) -> None:
    # A form field named "file" (no filename): not a file at all.
    for path in ("/v1/images", "/v1/searches"):
        response = client.post(
            path, data={"file": "not a file"}, content_type="multipart/form-data"
        )
        assert 400 <= response.status_code < 500, response.get_json()
        assert error_of(response)["message"]


def test_an_empty_part_and_an_empty_filename_are_4xx(client: FlaskClient) -> None:
    for path in ("/v1/images", "/v1/searches"):
        empty = client.post(
            path, data={"file": (io.BytesIO(b""), "x.jpg")}, content_type="multipart/form-data"
        )
        assert 400 <= empty.status_code < 500, empty.get_json()
        unnamed = client.post(
            path, data={"file": (io.BytesIO(jpeg(2)), "")}, content_type="multipart/form-data"
        )
        assert unnamed.status_code in (202, 400, 422), unnamed.get_json()


def multipart(parts: Sequence[tuple[str, str | None, bytes]], boundary: str = "b0und") -> bytes:
    """A multipart body built by hand: (name, filename or None, content) per part."""
    out = io.BytesIO()
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.write(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode())
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def test_a_huge_number_of_parts_is_a_4xx(client: FlaskClient, session: Session) -> None:
    # (The file last: werkzeug leaves a part it spooled to the garbage collector when it
    # stops parsing at the limit.)
    parts = [("label", None, b"x")] * 5000 + [("file", "x.jpg", jpeg(1))]
    response = client.post(
        "/v1/images", data=multipart(parts), content_type="multipart/form-data; boundary=b0und"
    )
    assert 400 <= response.status_code < 500, response.get_json()
    assert session.scalar(select(Job.id)) is None


def test_more_files_than_allowed_is_a_413(client: FlaskClient) -> None:
    files = [(io.BytesIO(b"x"), f"{i}.jpg") for i in range(101)]
    response = client.post("/v1/images", data={"file": files}, content_type="multipart/form-data")
    assert_refused(response, 413)


def test_a_part_with_an_empty_name_or_no_name_is_a_4xx(client: FlaskClient) -> None:
    for parts in (
        [("", "x.jpg", jpeg(1))],
        [("file", None, b"")],
        [("file", "x.jpg", b"")],
    ):
        response = client.post(
            "/v1/images",
            data=multipart(parts),
            content_type="multipart/form-data; boundary=b0und",
        )
        assert 400 <= response.status_code < 500, response.get_json()


def test_a_multipart_body_without_its_boundary_is_a_4xx(client: FlaskClient) -> None:
    response = client.post(
        "/v1/images", data=b"--x\r\n\r\n", content_type="multipart/form-data; boundary=y"
    )
    assert 400 <= response.status_code < 500
