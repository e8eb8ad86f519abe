"""A dependency that is down is answered 503 with Retry-After, never 500, and nothing is
half-written. Each case makes the dependency really unreachable (a closed loopback port)."""

from __future__ import annotations

import io
import socket

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from api.context import EXTENSION
from core.settings import Settings
from models import Image, Job
from tests.conftest import image_row, make_client
from tests.test_api import error_of, jpeg, upload


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_database_that_is_down_gives_503_with_retry_after(settings: Settings) -> None:
    down = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/facesearch"
    app = create_app(settings.model_copy(update={"database_url": down}))
    client = app.test_client()
    key = "fsk_0123abcd_" + "A" * 43  # well-formed: the check must ask the database
    for method, path in (("GET", "/v1/images"), ("GET", "/v1/jobs/x"), ("POST", "/v1/keys")):
        response = client.open(path, method=method, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 503, (path, response.get_json())
        assert response.headers["Retry-After"] == "5"
        error = error_of(response)
        assert error["code"] == "unavailable"
        assert error["details"] == {"dependency": "database"}
    assert client.get("/healthz").status_code == 200  # alive, just not ready
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"].startswith("error")
    app.extensions[EXTENSION].close()


def test_an_object_store_that_is_down_gives_503_and_writes_nothing(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    down = f"s3://key:secret@127.0.0.1:{closed_port()}/photos"
    client = make_client(settings.model_copy(update={"storage_url": down}), sessions)
    jobs_before = session.scalar(select(func.count()).select_from(Job))
    response = upload(client, (jpeg(5), "a.jpg"), label="Ada")
    assert response.status_code == 503, response.get_json()
    assert response.headers["Retry-After"] == "5"
    assert error_of(response)["details"] == {"dependency": "object store"}
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Job)) == jobs_before
    assert session.scalar(select(func.count()).select_from(Image)) == 0

    search = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(6)), "q.jpg")},
        content_type="multipart/form-data",
    )
    assert search.status_code == 503
    assert search.headers["Retry-After"] == "5"


def test_a_broker_that_is_down_says_when_to_retry(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(
        settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{closed_port()}/0"}),
        sessions,
    )
    response = upload(client, (jpeg(7), "a.jpg"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_an_erasure_with_the_store_down_erases_nothing(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    """The bytes go before the commit: a store that fails rolls the rows back (503), so a
    retry erases everything, and no row outlives its bytes or the other way round."""
    image = image_row(sha256="e" * 64, object_key="objects/e", label="Ada")
    session.add(image)
    session.commit()
    down = f"s3://key:secret@127.0.0.1:{closed_port()}/photos"
    client = make_client(settings.model_copy(update={"storage_url": down}), sessions)
    for path in ("/v1/labels/Ada", f"/v1/images/{image.id}"):
        response = client.delete(path)
        assert response.status_code == 503, (path, response.get_json())
        assert response.headers["Retry-After"] == "5"
        assert error_of(response)["details"] == {"dependency": "object store"}
    session.expire_all()
    assert session.get(Image, image.id) is not None
