"""/metrics: request counts and latency by route and status, and the system's state."""

from __future__ import annotations

import io

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from tests.conftest import make_client, make_key
from tests.test_api import jpeg


@pytest.fixture
def client(settings: Settings, sessions: sessionmaker[Session]) -> FlaskClient:
    """An admin key for every gallery: the figures cover them all (a bound key gets 403)."""
    return make_client(settings, sessions, key=make_key(sessions, gallery_id=None))


def samples(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_and_status(client: FlaskClient) -> None:
    route = {"method": "GET", "route": "/v1/images/<int:image_id>"}
    before = samples(client)
    assert client.get("/v1/images/424242").status_code == 404
    after = samples(client)
    name = "facesearch_http_requests_total"
    assert (
        value(after, name, status="404", **route) == value(before, name, status="404", **route) + 1
    )
    assert value(after, "facesearch_http_request_duration_seconds_count", **route) >= 1


def test_jobs_images_and_queue_depth_come_from_the_record(client: FlaskClient) -> None:
    response = client.post(
        "/v1/images",
        data={"file": (io.BytesIO(jpeg(1)), "a.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202
    metrics = samples(client)
    assert value(metrics, "facesearch_jobs", kind="ingest", status="queued") == 1
    assert value(metrics, "facesearch_images", status="pending") == 1
    assert value(metrics, "facesearch_queue_depth", queue="ingest") == 1
    for queue in ("search", "io", "index"):
        assert value(metrics, "facesearch_queue_depth", queue=queue) == 0


def test_metrics_is_in_the_openapi_document(client: FlaskClient) -> None:
    assert "/metrics" in client.get("/openapi.json").get_json()["paths"]
