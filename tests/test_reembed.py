"""`facesearch reembed`: a new face recipe replaces the old one without ever mixing them, and
searches keep answering throughout (the old version until the switch, then the new one)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cli.lfw import LfwImage
from cli.main import cli
from models import Face, Image, ImageStatus, Job, JobStatus, served_version, version_name
from models.embedding import NAMED_MARGIN, ServedVersion
from models.face import iou
from services.reembed import ReembedRefusedError, create_reembed_job, plan
from tests.test_tasks import Harness, files, harness  # noqa: F401 (the fixture, used by name)
from workers import reembed as reembed_module
from workers.indexing import run_index
from workers.pipeline import parse_version
from workers.pipeline.weights import DEFAULT_MODEL
from workers.reembed import MISSING_BYTES_REASON, carry_labels, run_reembed

OLD = DEFAULT_MODEL  # the original recipe: margin 0.25, no alignment, no flip
NEW = version_name(DEFAULT_MODEL, margin=0.1, align=True, flip=True)


# --- the names and the label rule ----------------------------------------------------------


def test_a_version_names_its_recipe_and_reads_back() -> None:
    assert f"{DEFAULT_MODEL}+margin0.1+align+flip" == NEW
    assert len(NEW) <= 64  # faces.model_name
    assert version_name(DEFAULT_MODEL, margin=NAMED_MARGIN, align=False, flip=False) == OLD
    recipe = parse_version(NEW)
    assert (recipe.model_name, recipe.margin, recipe.align, recipe.flip) == (
        DEFAULT_MODEL,
        0.1,
        True,
        True,
    )
    assert parse_version(OLD).margin == NAMED_MARGIN
    for bad in ("", "+flip", f"{OLD}+mirror", f"{OLD}+marginx"):
        with pytest.raises(ValueError, match="embedding version"):
            parse_version(bad)


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_labels_follow_the_old_face_each_new_face_overlaps() -> None:
    old = [((10, 10, 50, 50), "By hand"), ((100, 10, 50, 50), None)]
    # The same two faces, boxes a little off, in the other order; and a small new face.
    new = [(102, 12, 48, 50), (8, 10, 52, 52), (180, 150, 20, 20)]
    labels = carry_labels(new, old, image_label="Uploaded", width=250, height=250)
    # The hand-set label stays on its face; the unlabelled one stays unlabelled (a label
    # removed by hand is not given back), and the upload label finds no unmatched prominent
    # face, so nobody takes it.
    assert labels == [None, "By hand", None]


def test_the_upload_label_goes_to_a_new_prominent_face_if_no_face_holds_it() -> None:
    # The old recipe found nothing; the new one finds the subject.
    assert carry_labels([(90, 90, 70, 70)], [], image_label="Ada", width=250, height=250) == ["Ada"]
    # Already held by a carried face: not given twice.
    old = [((10, 10, 50, 50), "Ada")]
    new = [(10, 10, 50, 50), (90, 90, 70, 70)]
    assert carry_labels(new, old, image_label="Ada", width=250, height=250) == ["Ada", None]


# --- the whole re-embed, with real faces ---------------------------------------------------


def _faces_by_version(session: Session) -> Counter[str]:
    rows = session.execute(select(Face.model_name, func.count()).group_by(Face.model_name))
    return Counter({str(name): int(n) for name, n in rows})


def _best(h: Harness, query: LfwImage) -> dict[str, Any]:
    found = h.search(query.data, top_k=3)
    assert found["status"] == "succeeded", found
    return found


class Runs:
    """The job's runs by hand: each run's continuation and index requests recorded."""

    def __init__(self, h: Harness, job_id: str) -> None:
        self.harness, self.job_id = h, job_id
        self.continuations: list[float] = []
        self.dropped: list[list[str]] = []

    def run(self, *, budget_s: float | None = 0.0) -> None:
        run_reembed(
            self.job_id,
            sessions=self.harness.sessions,
            store=self.harness.store,
            pipeline=self.harness.pipeline,
            request_index=lambda m, j: self.harness.index_requests.append((m, j)),
            drop_collections=self.dropped.append,
            batch_size=2,
            max_pixels=self.harness.settings.max_image_pixels,
            budget_s=budget_s,
            continue_later=self.continuations.append,
        )

    def index(self) -> None:
        while self.harness.index_requests:
            model, job = self.harness.index_requests.pop(0)
            run_index(
                model,
                job,
                sessions=self.harness.sessions,
                index=self.harness.index,
                batch_size=50,
            )

    def job(self) -> Job:
        with self.harness.sessions() as session:
            job = session.get_one(Job, self.job_id)
            session.expunge(job)
            return job


@pytest.mark.slow
def test_reembed_switches_searches_only_when_complete_and_keeps_labels(
    harness: Harness,  # noqa: F811 (the fixture)
    lfw_faces: dict[str, list[LfwImage]],
) -> None:
    costa, gul = lfw_faces["Albert_Costa"], lfw_faces["Abdullah_Gul"]
    # The gallery as the original recipe made it.
    assert harness.pipeline.embedding_version == OLD
    costa_job = harness.job(harness.ingest(files(costa[:3]), label="Albert_Costa"))
    gul_job = harness.job(harness.ingest(files(gul[:2]), label="Abdullah_Gul"))
    assert costa_job["status"] == gul_job["status"] == "succeeded"
    with harness.sessions() as session:
        assert served_version(session, DEFAULT_MODEL) == OLD  # the first version indexed
        gul_image = session.get_one(Image, gul_job["result"]["image_ids"][0])
        (gul_face,) = gul_image.faces
        gul_box = (gul_face.box_x, gul_face.box_y, gul_face.box_w, gul_face.box_h)
        # Bytes gone from the store: this image cannot be embedded again.
        lost = session.get_one(Image, costa_job["result"]["image_ids"][2])
        lost_id, lost_key = lost.id, lost.object_key
    relabel = harness.client.put(f"/v1/faces/{gul_face.id}/label", json={"label": "Gul, by hand"})
    assert relabel.status_code == 200
    harness.store.delete(lost_key)
    before = _best(harness, costa[4])
    assert before["model"] == OLD

    # The workers now embed with the new recipe (the same networks, another crop and flip).
    harness.pipeline = harness.pipeline.for_version(NEW)
    with harness.sessions() as session:
        found = plan(session, NEW)
        assert (found.version, found.served, found.images, found.faces) == (NEW, OLD, 5, 5)
        job_id = create_reembed_job(session, NEW).id
        session.commit()
        with pytest.raises(ReembedRefusedError, match="still running"):
            create_reembed_job(session, NEW)
    runs = Runs(harness, job_id)

    # A run with no time left: one batch (2 images), then its continuation.
    runs.run()
    assert runs.continuations == [0.0]
    job = runs.job()
    assert (job.params["phase"], job.done, job.total) == ("embed", 2, 5)
    runs.index()  # the new faces indexed meanwhile: still not served
    during = _best(harness, costa[4])
    assert during["model"] == OLD  # answered from the old version, query embedded with it
    top = during["faces"][0]["matches"][0]
    assert top["label"] == before["faces"][0]["matches"][0]["label"] == "Albert_Costa"
    assert top["score"] == pytest.approx(before["faces"][0]["matches"][0]["score"], abs=1e-5)

    # A redelivered copy of that run, which read the cursor before the commit, writes nothing.
    assert (
        reembed_module._embed_batch(
            job_id,
            NEW,
            0,
            sessions=harness.sessions,
            store=harness.store,
            pipeline=harness.pipeline,
            batch_size=2,
            max_pixels=harness.settings.max_image_pixels,
        )
        is False
    )
    # A cursor behind what was written (a run made by hand, a restore): the images that
    # have faces of the new version are passed over, not embedded again.
    with harness.sessions() as session:
        job = session.get_one(Job, job_id)
        job.params = {**job.params, "after": 0}
        session.commit()
    for _ in range(10):
        if runs.job().params["phase"] != "embed":
            break
        runs.run()
    with harness.sessions() as session:
        keys = session.execute(select(Face.image_id, Face.model_name, Face.face_index)).all()
        assert len(keys) == len(set(keys))  # the unique constraint would have refused it too
        assert _faces_by_version(session)[NEW] == 4  # one face each, the lost image aside
    job = runs.job()
    assert job.params["phase"] == "index"
    assert (job.done, job.failed) == (4, 1)
    assert runs.continuations[-1] == reembed_module.INDEX_WAIT_S  # waits for the writer
    assert _best(harness, costa[4])["model"] == OLD  # not switched while faces are unindexed

    runs.index()
    runs.run(budget_s=None)
    job = runs.job()
    assert job.status == JobStatus.PARTIAL, job.error
    assert job.result is not None
    assert job.result["failures"] == [{"image_id": lost_id, "error": MISSING_BYTES_REASON}]
    assert runs.dropped == [[OLD]]
    rendered = harness.client.get(f"/v1/jobs/{job_id}").get_json()  # an admin key's view
    assert (rendered["kind"], rendered["status"]) == ("reembed", "partial")
    assert rendered["progress"]["failed"] == 1
    with harness.sessions() as session:
        assert served_version(session, DEFAULT_MODEL) == NEW
        assert _faces_by_version(session) == Counter({NEW: 4})  # nothing of the old left
        lost = session.get_one(Image, lost_id)
        assert (lost.status, lost.error, lost.faces) == (
            ImageStatus.FAILED,
            MISSING_BYTES_REASON,
            [],
        )
        (new_gul,) = session.get_one(Image, gul_image.id).faces
        assert new_gul.label == "Gul, by hand"  # set by hand on the old face: kept
        assert iou(gul_box, (new_gul.box_x, new_gul.box_y, new_gul.box_w, new_gul.box_h)) >= 0.5
        other_gul = session.get_one(Image, gul_job["result"]["image_ids"][1])
        assert [f.label for f in other_gul.faces] == ["Abdullah_Gul"]

    after = _best(harness, costa[4])
    assert after["model"] == NEW
    labels = [m["label"] for m in after["faces"][0]["matches"]]
    assert labels[:2] == ["Albert_Costa", "Albert_Costa"]  # the two of his images left
    assert _best(harness, gul[2])["faces"][0]["matches"][0]["label"] in (
        "Gul, by hand",
        "Abdullah_Gul",
    )
    # The index writer's part: the old version's collection dropped.
    for version in runs.dropped[0]:
        harness.index.drop(version)
    assert harness.index.live_collection(OLD) is None


@pytest.mark.slow
def test_a_worker_of_another_recipe_fails_the_job_and_writes_nothing(
    harness: Harness,  # noqa: F811 (the fixture)
    lfw_faces: dict[str, list[LfwImage]],
) -> None:
    harness.ingest(files(lfw_faces["Ai_Sugiyama"][:1]), label="Ai_Sugiyama")
    with harness.sessions() as session:
        job_id = create_reembed_job(session, NEW).id
        session.commit()
    runs = Runs(harness, job_id)  # the harness's pipeline is still the old recipe
    runs.run(budget_s=None)
    job = runs.job()
    assert job.status == JobStatus.FAILED
    assert f"this worker embeds {OLD}, the job asks for {NEW}" in (job.error or "")
    with harness.sessions() as session:
        assert _faces_by_version(session) == Counter({OLD: 1})
        assert session.get_one(ServedVersion, DEFAULT_MODEL).version == OLD


def test_dry_run_says_what_it_would_do_and_queues_nothing(cli_env: Any) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["reembed", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"configured embedding version: {NEW}" in result.output
    assert "searches served from: (none recorded yet)" in result.output
    assert "would embed 0 image(s) again and replace 0 face(s)" in result.output
    assert "queued" not in result.output
    # An empty gallery on the configured version: nothing to re-embed, and no job.
    result = runner.invoke(cli, ["reembed"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output
