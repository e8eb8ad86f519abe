"""Structured logs: one JSON line per request carrying the request id and the job id."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from flask.testing import FlaskClient

import core.logging
from tests.test_api import jpeg


def request_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.msg for r in caplog.records if r.name == "api.request" and isinstance(r.msg, dict)]


def test_each_request_logs_one_line_with_its_ids(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = client.post(
        "/v1/images",
        data={"file": (io.BytesIO(jpeg(1)), "a.jpg")},
        content_type="multipart/form-data",
        headers={"X-Request-ID": "req-7"},
    )
    job_id = response.get_json()["job_id"]
    assert response.headers["X-Request-ID"] == "req-7"
    client.get(f"/v1/jobs/{job_id}")

    events = request_events(caplog)
    assert [(e["method"], e["status"]) for e in events] == [("POST", 202), ("GET", 200)]
    assert events[0]["request_id"] == "req-7"
    assert events[0]["job_id"] == job_id == events[1]["job_id"]
    # the service's own line about the job carries the same request id
    created = [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "ingest job created"
    ]
    assert created[0]["request_id"] == "req-7"


def test_a_person_named_in_a_path_is_not_logged(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.delete("/v1/labels/Ada Lovelace")
    client.get("/v1/images/12345")
    paths = [e["path"] for e in request_events(caplog)]
    assert paths == ["/v1/labels/<label>", "/v1/images/12345"]
    assert not any("Ada Lovelace" in r.getMessage() for r in caplog.records)


def test_an_unsafe_request_id_is_replaced(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id; drop table"})
    assert response.headers["X-Request-ID"] != "bad id; drop table"
    assert len(response.headers["X-Request-ID"]) == 32


def test_lines_are_json_when_not_on_a_terminal(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    client.get("/healthz")
    record = next(r for r in caplog.records if r.name == "api.request")
    # Install the handler afresh: another test may have run Alembic, whose fileConfig
    # replaces the root logger's handlers (pytest adds its own beside ours).
    monkeypatch.setattr(core.logging, "_configured", False)
    core.logging.configure_logging(json=None)
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)
    )
    line = handler.format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["event"] == "request"
    assert parsed["path"] == "/healthz"
    assert parsed["level"] == "info"
