"""A label names one face: the rule that picks it, the routes that label a face on its own,
and every reader of labels (search matches, listings, erasure) agreeing on it."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cli.lfw import LfwImage
from core.settings import Settings
from models import Face, Image, Scope
from models.face import prominent_face
from services.galleries import create_gallery
from tests.conftest import make_client, make_key
from tests.test_api import error_of, jpeg, upload
from tests.test_tasks import Harness, harness  # noqa: F401 (the fixture, used by name)

# --- the rule ----------------------------------------------------------------------------------


def test_a_small_face_at_the_centre_does_not_take_the_label_of_a_large_one() -> None:
    # A bystander's face at the centre, under half the area of the subject's off it.
    boxes = [(110, 110, 30, 30), (10, 10, 60, 80)]
    assert prominent_face(boxes, 250, 250) == 1


def test_of_faces_at_least_half_as_large_the_one_nearest_the_centre() -> None:
    # 60x60 off centre, 45x45 (56% of its area) at the centre: the centred one.
    assert prominent_face([(0, 0, 60, 60), (100, 100, 45, 45)], 250, 250) == 1
    # Just under half the area (35x50 = 1750 < 1800): the large one.
    assert prominent_face([(0, 0, 60, 60), (100, 100, 35, 50)], 250, 250) == 0
    boxes = [(0, 0, 50, 50), (100, 100, 50, 50), (200, 200, 50, 50)]
    assert prominent_face(boxes, 250, 250) == 1
    # The same distance from the centre: the larger, then the first.
    assert prominent_face([(0, 100, 50, 50), (195, 95, 60, 60)], 250, 250) == 1
    assert prominent_face([(0, 100, 50, 50), (200, 100, 50, 50)], 250, 250) == 0


def test_no_face_no_choice() -> None:
    assert prominent_face([], 250, 250) is None


# --- the routes, on rows the worker would have written -----------------------------------------


def add_face(
    session: Session,
    image: Image,
    index: int,
    box: tuple[int, int, int, int],
    model_name: str = "m",
) -> Face:
    x, y, w, h = box
    face = Face(
        image_id=image.id,
        face_index=index,
        model_name=model_name,
        dim=2,
        embedding=np.zeros(2, "<f4").tobytes(),
        box_x=x,
        box_y=y,
        box_w=w,
        box_h=h,
        confidence=0.99,
        landmarks={},
    )
    session.add(face)
    session.flush()
    return face


def uploaded(client: FlaskClient, session: Session, seed: int, label: str | None) -> Image:
    assert upload(client, (jpeg(seed), f"{seed}.jpg"), label=label).status_code == 202
    return session.scalars(select(Image).order_by(Image.id.desc())).first()  # type: ignore[return-value]


@pytest.fixture
def two_faces(client: FlaskClient, session: Session) -> tuple[Image, Face, Face]:
    image = uploaded(client, session, 1, None)
    big = add_face(session, image, 0, (1, 1, 40, 40))
    small = add_face(session, image, 1, (50, 10, 20, 20))
    session.commit()
    return image, big, small


def test_a_face_is_labelled_relabelled_and_unlabelled_on_its_own(
    client: FlaskClient, two_faces: tuple[Image, Face, Face]
) -> None:
    image, big, small = two_faces
    answer = client.put(f"/v1/faces/{small.id}/label", json={"label": "  Ada Lovelace "})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["label"] == "Ada Lovelace"  # blanks around it dropped
    assert body["image_id"] == image.id
    assert body["image_url"] == f"/v1/images/{image.id}/content"
    faces = client.get(f"/v1/images/{image.id}").get_json()["faces"]
    assert {f["id"]: f["label"] for f in faces} == {big.id: None, small.id: "Ada Lovelace"}

    relabelled = client.put(f"/v1/faces/{small.id}/label", json={"label": "Grace Hopper"})
    assert relabelled.get_json()["label"] == "Grace Hopper"
    assert client.get(f"/v1/faces/{small.id}").get_json()["label"] == "Grace Hopper"
    assert [i["label"] for i in client.get("/v1/labels").get_json()["items"]] == ["Grace Hopper"]

    cleared = client.delete(f"/v1/faces/{small.id}/label")
    assert cleared.status_code == 200
    assert cleared.get_json()["label"] is None
    assert client.get("/v1/labels").get_json()["items"] == []


def test_a_label_reaches_the_same_face_of_the_other_embedding_version(
    client: FlaskClient, session: Session, two_faces: tuple[Image, Face, Face]
) -> None:
    """During a re-embed an image holds its faces twice, one set per embedding version;
    searches read the old set until the switch, and the new set is what stays after it. A
    label set meanwhile on an old face goes to the new face its box overlaps, so it is not
    lost at the switch; the other faces keep theirs."""
    image, big, small = two_faces
    # The new version's faces: a few pixels off, as a new crop recipe's detection gives.
    new_big = add_face(session, image, 0, (3, 2, 40, 41), model_name="m+flip")
    new_small = add_face(session, image, 1, (51, 11, 20, 20), model_name="m+flip")
    session.commit()

    assert client.put(f"/v1/faces/{small.id}/label", json={"label": "Ada"}).status_code == 200
    labels = {f.id: f.label for f in session.scalars(select(Face).where(Face.image_id == image.id))}
    assert labels == {big.id: None, small.id: "Ada", new_big.id: None, new_small.id: "Ada"}

    # Unlabelling, or labelling a face of the new version, reaches its twin the same way.
    assert client.delete(f"/v1/faces/{small.id}/label").status_code == 200
    assert client.put(f"/v1/faces/{new_big.id}/label", json={"label": "Bo"}).status_code == 200
    session.expire_all()
    labels = {f.id: f.label for f in session.scalars(select(Face).where(Face.image_id == image.id))}
    assert labels == {big.id: "Bo", small.id: None, new_big.id: "Bo", new_small.id: None}


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 422), ({"label": ""}, 422), ({"label": "   "}, 422), ({"label": "x" * 201}, 422)],
)
def test_an_invalid_label_is_422(
    client: FlaskClient, two_faces: tuple[Image, Face, Face], body: dict[str, Any], status: int
) -> None:
    answer = client.put(f"/v1/faces/{two_faces[1].id}/label", json=body)
    assert answer.status_code == status
    assert error_of(answer)["status"] == status


def test_an_unknown_face_is_404(client: FlaskClient) -> None:
    for answer in (
        client.get("/v1/faces/987654321"),
        client.put("/v1/faces/987654321/label", json={"label": "x"}),
        client.delete("/v1/faces/987654321/label"),
        client.get(f"/v1/faces/{2**63}"),  # past BIGINT: no such id either
    ):
        assert answer.status_code == 404
        assert error_of(answer)["code"] in ("no_such_face", "not_found")


def test_a_search_key_reads_a_face_but_cannot_label_it(
    settings: Settings, sessions: sessionmaker[Session], two_faces: tuple[Image, Face, Face]
) -> None:
    face = two_faces[1]
    reader = make_client(settings, sessions, key=make_key(sessions, scope=Scope.SEARCH))
    assert reader.get(f"/v1/faces/{face.id}").status_code == 200
    refused = reader.put(f"/v1/faces/{face.id}/label", json={"label": "x"})
    assert refused.status_code == 403
    assert reader.delete(f"/v1/faces/{face.id}/label").status_code == 403
    writer = make_client(settings, sessions, key=make_key(sessions, scope=Scope.WRITE))
    assert writer.put(f"/v1/faces/{face.id}/label", json={"label": "x"}).status_code == 200


def test_another_gallery_cannot_see_or_label_the_face(
    settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
    two_faces: tuple[Image, Face, Face],
) -> None:
    face = two_faces[1]
    other = create_gallery(session, "gallery-b")
    session.commit()
    theirs = make_client(settings, sessions, key=make_key(sessions, gallery_id=other.id))
    for answer in (
        theirs.get(f"/v1/faces/{face.id}"),
        theirs.put(f"/v1/faces/{face.id}/label", json={"label": "Mallory"}),
        theirs.delete(f"/v1/faces/{face.id}/label"),
    ):
        assert answer.status_code == 404
        assert error_of(answer)["code"] == "no_such_face"
    session.refresh(face)
    assert face.label is None


def test_listings_follow_the_faces_and_the_upload_label_until_faces_exist(
    client: FlaskClient, session: Session, two_faces: tuple[Image, Face, Face]
) -> None:
    image, _, small = two_faces
    pending = uploaded(client, session, 2, "Alan Turing")  # no faces written yet
    client.put(f"/v1/faces/{small.id}/label", json={"label": "Ada Lovelace"})
    labels = client.get("/v1/labels").get_json()["items"]
    assert labels == [{"label": "Ada Lovelace", "images": 1}, {"label": "Alan Turing", "images": 1}]
    listed = client.get("/v1/images", query_string={"label": "Ada Lovelace"}).get_json()
    assert [i["id"] for i in listed["items"]] == [image.id]
    listed = client.get("/v1/images", query_string={"label": "Alan Turing"}).get_json()
    assert [i["id"] for i in listed["items"]] == [pending.id]
    # Once its faces are written, the upload label counts where a face carries it.
    add_face(session, pending, 0, (1, 1, 10, 10))
    session.commit()
    assert client.get("/v1/labels", query_string={"prefix": "Alan"}).get_json()["items"] == []


def test_erasing_a_person_takes_the_images_where_a_face_carries_the_label(
    client: FlaskClient, session: Session, two_faces: tuple[Image, Face, Face]
) -> None:
    small = two_faces[2]
    uploaded(client, session, 3, "Ada Lovelace")
    bystander = uploaded(client, session, 4, None)
    client.put(f"/v1/faces/{small.id}/label", json={"label": "Ada Lovelace"})
    erased = client.delete("/v1/labels/Ada Lovelace")
    assert erased.status_code == 200, erased.get_json()
    assert erased.get_json()["images"] == 2
    assert erased.get_json()["faces"] == 2  # the labelled face and the other face beside it
    remaining = {i["id"] for i in client.get("/v1/images").get_json()["items"]}
    assert remaining == {bystander.id}  # both of the person's images went


# --- the rule through the worker, on real faces ------------------------------------------------


def _tile(image: LfwImage, side: int) -> np.ndarray:
    with PILImage.open(io.BytesIO(image.data)) as opened:
        return np.asarray(opened.convert("RGB").resize((side, side)))


@pytest.mark.slow
def test_an_uploaded_label_names_the_prominent_face_and_the_others_match_unlabelled(
    harness: Harness,  # noqa: F811 (the fixture)
    lfw_faces: dict[str, list[LfwImage]],
) -> None:
    # Ai Sugiyama at full size beside Abdullah Gul at half size: one photo, two people.
    canvas = np.full((250, 375, 3), 255, np.uint8)
    canvas[:, :250] = _tile(lfw_faces["Ai_Sugiyama"][0], 250)
    canvas[60:185, 250:] = _tile(lfw_faces["Abdullah_Gul"][0], 125)
    buffer = io.BytesIO()
    PILImage.fromarray(canvas).save(buffer, format="JPEG", quality=95)
    job = harness.job(harness.ingest([(buffer.getvalue(), "pair.jpg")], label="Ai_Sugiyama"))
    assert job["status"] == "succeeded", job
    image = harness.client.get(f"/v1/images/{job['result']['image_ids'][0]}").get_json()
    assert image["label"] == "Ai_Sugiyama"  # what was asked at upload
    assert len(image["faces"]) == 2
    big, small = sorted(image["faces"], key=lambda f: -f["box"]["width"] * f["box"]["height"])
    assert big["box"]["x"] < 250 <= small["box"]["x"]  # the large face is Ai Sugiyama's
    assert (big["label"], small["label"]) == ("Ai_Sugiyama", None)

    def best_match(query: LfwImage) -> dict[str, Any]:
        found = harness.search(query.data, top_k=1)
        assert found["status"] == "succeeded", found
        face = max(found["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"])
        match: dict[str, Any] = face["matches"][0]
        return match

    gul = best_match(lfw_faces["Abdullah_Gul"][1])
    assert (gul["face_id"], gul["label"]) == (small["id"], None)  # not "Ai_Sugiyama"
    sugiyama = best_match(lfw_faces["Ai_Sugiyama"][1])
    assert (sugiyama["face_id"], sugiyama["label"]) == (big["id"], "Ai_Sugiyama")

    named = harness.client.put(f"/v1/faces/{small['id']}/label", json={"label": "Abdullah_Gul"})
    assert named.status_code == 200
    assert best_match(lfw_faces["Abdullah_Gul"][1])["label"] == "Abdullah_Gul"
