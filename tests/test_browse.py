"""Listing images, jobs and labels: filters and cursor pagination."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.test_api import error_of, jpeg


def add(client: FlaskClient, label: str, *seeds: int) -> str:
    files = [(io.BytesIO(jpeg(seed)), f"{label}-{seed}.jpg") for seed in seeds]
    response = client.post(
        "/v1/images", data={"file": files, "label": label}, content_type="multipart/form-data"
    )
    assert response.status_code == 202
    job_id: str = response.get_json()["job_id"]
    return job_id


def all_pages(client: FlaskClient, url: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get(url, query_string=query).get_json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_images_by_label_in_pages(client: FlaskClient) -> None:
    add(client, "Ada", 1, 2, 3)
    add(client, "Grace", 4, 5)
    pages = all_pages(client, "/v1/images", label="Ada", limit=2)
    assert [len(p) for p in pages] == [2, 1]
    items = [image for page in pages for image in page]
    assert {i["label"] for i in items} == {"Ada"}
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)
    assert all_pages(client, "/v1/images", status="ready") == [[]]


def test_jobs_newest_first_filtered_by_kind(client: FlaskClient) -> None:
    first = add(client, "Ada", 6)
    second = add(client, "Grace", 7)
    client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(8)), "q.jpg")},
        content_type="multipart/form-data",
    )
    pages = all_pages(client, "/v1/jobs", kind="ingest", limit=1)
    assert [job["id"] for page in pages for job in page] == [second, first]
    assert [len(p) for p in all_pages(client, "/v1/jobs", kind="search")] == [1]


def test_labels_with_counts(client: FlaskClient) -> None:
    add(client, "Ada", 9, 10)
    add(client, "Grace", 11)
    add(client, "Ad_min", 12)
    body = client.get("/v1/labels").get_json()
    assert body["items"] == [
        {"label": "Ad_min", "images": 1},
        {"label": "Ada", "images": 2},
        {"label": "Grace", "images": 1},
    ]
    # "_" in a prefix is a character, not a wildcard
    assert client.get("/v1/labels?prefix=Ad_").get_json()["items"] == [
        {"label": "Ad_min", "images": 1}
    ]
    pages = all_pages(client, "/v1/labels", limit=2)
    assert [len(p) for p in pages] == [2, 1]


@pytest.mark.parametrize(
    "query", ["cursor=garbage!", "limit=0", "limit=201", "status=nope", "cursor=WzEsMl0"]
)
def test_bad_listing_parameters_are_422(client: FlaskClient, query: str) -> None:
    response = client.get(f"/v1/images?{query}")
    assert response.status_code == 422
    assert error_of(response)["message"]
