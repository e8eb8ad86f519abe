"""Galleries and keys under hostile and concurrent requests: a clear 4xx, never a 500."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from tests.conftest import make_client, make_key


def test_concurrent_galleries_of_one_name_make_one_and_never_a_500(
    committed: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = committed
    key = make_key(sessions, gallery_id=None)
    clients = [make_client(settings, sessions, key=key) for _ in range(4)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def post(client: Any) -> None:
        barrier.wait()
        statuses.append(client.post("/v1/galleries", json={"name": "same"}).status_code)

    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [201, 409, 409, 409]


def test_hostile_names_and_prefixes_are_refused_plainly(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    root = make_client(settings, sessions, key=make_key(sessions, gallery_id=None))
    cases = [
        ("post", "/v1/galleries", {"json": {"name": "x" * 101}}, 422),
        ("post", "/v1/galleries", {"json": {"name": "../etc"}}, 422),
        ("post", "/v1/keys", {"json": {"scope": "root"}}, 422),
        ("post", "/v1/keys", {"json": {"scope": "search", "gallery": "nowhere"}}, 404),
        ("delete", "/v1/keys/" + "f" * 5000, {}, 404),
        ("delete", "/v1/keys/fsk_%25%2F..", {}, 404),
        ("delete", "/v1/labels/" + "L" * 5000, {}, 404),
        ("delete", "/v1/labels/50%25_off", {}, 404),
        ("get", "/v1/images", {"headers": {"Facesearch-Gallery": "g" * 5000}}, 404),
        ("get", "/v1/galleries/99999999999999999999", {}, 404),
        ("get", "/v1/images/99999999999999999999", {}, 404),
        ("get", "/v1/images/99999999999999999999/content", {}, 404),
        ("delete", "/v1/images/99999999999999999999", {}, 404),
    ]
    for method, path, kwargs, expected in cases:
        response = getattr(root, method)(path, **kwargs)
        assert response.status_code == expected, (path, response.get_json())
        assert response.get_json()["error"]["message"], path
