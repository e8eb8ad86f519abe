"""The calibrated same-person verdict: the fit (evaluation/calibration.py), the committed
calibration and its reader (core/verdict.py), the rendering, ``min_probability`` in the API,
and real LFW faces through the worker's search."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from cli.lfw import LfwImage
from cli.search import print_table
from core.index import VectorIndex
from core.settings import Settings
from core.verdict import CALIBRATION_DIR, Calibration, calibration_for, same_person
from evaluation.calibration import (
    VERDICT_BANDS,
    cross_validate,
    eval_report_notes,
    fit_calibration,
    fit_isotonic,
    fit_platt,
    isotonic_probability,
    match_rates,
    negative_tail,
    reliability_table,
    threshold_at_fmr,
)
from evaluation.embedders import FaceNetMtcnn
from models import Search, SearchFace, SearchMatch, version_name
from services.events import search_result_data
from services.render import render_search_face
from tests.test_api import error_of, jpeg, make_client, search
from tests.test_tasks import Harness, files
from workers.pipeline import FacePipeline
from workers.pipeline.weights import DEFAULT_MODEL, get_spec
from workers.runtime import build_pipeline

MODEL = DEFAULT_MODEL  # the original recipe's version: the model alone
# The version the product embeds with by default (the tuned recipe, core.settings).
PRODUCT = version_name(MODEL, margin=0.1, align=True, flip=True)


def synthetic(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores shaped like FaceNet's on LFW: same-person pairs around 0.7, others around 0.05."""
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.7, 0.12, n), rng.normal(0.05, 0.1, n)])
    same = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])
    return scores, same


# --- the fit -----------------------------------------------------------------------------


def test_platt_recovers_a_known_curve() -> None:
    rng = np.random.default_rng(3)
    scores = rng.uniform(-0.2, 1.0, 200_000)
    truth_a, truth_b = 20.0, -8.0
    same = rng.random(len(scores)) < 1 / (1 + np.exp(-(truth_a * scores + truth_b)))
    fitted = fit_platt(scores, same)
    assert fitted.a == pytest.approx(truth_a, rel=0.05)
    assert fitted.b == pytest.approx(truth_b, rel=0.05)
    assert fitted.score_at(0.5) == pytest.approx(-truth_b / truth_a, abs=0.01)


def test_the_fit_reproduces_and_its_cutoffs_match_the_bands() -> None:
    scores, same = synthetic()
    first, again = fit_calibration(scores, same), fit_calibration(scores, same)
    assert first == again  # deterministic: a refit on the same vectors writes the same file
    cut = first["verdicts"]["score_cutoffs"]
    calibration = Calibration(
        model="m",
        weights_sha256="0" * 64,
        a=first["platt"]["a"],
        b=first["platt"]["b"],
        same_at_or_above=cut["same_at_or_above"],
        different_at_or_below=cut["different_at_or_below"],
        threshold=first["threshold"],
    )
    assert calibration.probability(cut["same_at_or_above"]) == pytest.approx(
        VERDICT_BANDS["same"], abs=1e-4
    )
    assert calibration.probability(cut["different_at_or_below"]) == pytest.approx(
        VERDICT_BANDS["different"], abs=1e-4
    )
    # The most accurate threshold lies between the two clusters, inside the uncertain band.
    assert cut["different_at_or_below"] < first["threshold"] < cut["same_at_or_above"]
    assert calibration.verdict(0.9) == "same"
    assert calibration.verdict(0.0) == "different"


def test_platt_never_says_certain_on_separated_scores() -> None:
    # Perfectly separated: plain maximum likelihood would run the slope to infinity.
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    same = np.array([False, False, False, True, True, True])
    p = fit_platt(scores, same).probability(scores)
    assert np.all((p > 0) & (p < 1))
    assert np.all(np.diff(p) > 0)


def test_isotonic_is_monotone_and_bounded() -> None:
    scores, same = synthetic(500, seed=1)
    knots = fit_isotonic(scores, same)
    grid = np.linspace(-1, 1, 2001)
    p = isotonic_probability(grid, knots)
    assert np.all(np.diff(p) >= 0)
    assert p.min() >= 0
    assert p.max() <= 1
    # On its own sample it is the least-squares monotone fit: never worse than a constant.
    fitted = isotonic_probability(scores, knots)
    assert np.mean((fitted - same) ** 2) < np.mean((same.mean() - same) ** 2)


def test_threshold_at_fmr_allows_at_most_that_many_false_matches() -> None:
    negatives = np.arange(1000) / 1000  # 0.000 .. 0.999
    for fmr, allowed in ((1e-2, 10), (1e-3, 1), (1e-4, 0)):
        t = threshold_at_fmr(negatives, fmr)
        rates = match_rates(t, np.array([0.5, 1.0]), negatives)
        assert rates["false_matches"] == allowed
        assert rates["fmr"] <= fmr
    # The lowest such threshold: one step down admits one more false match.
    t = threshold_at_fmr(negatives, 1e-2)
    assert match_rates(np.nextafter(t, -np.inf), np.array([]), negatives)["false_matches"] == 11


def test_cross_validation_scores_held_out_folds() -> None:
    scores, same = synthetic(3000)
    folds = np.concatenate([np.arange(3000) % 10, np.arange(3000) % 10])
    usable = np.ones(len(scores), bool)
    usable[0] = False  # a pair without a face: an error, whatever the threshold
    result = cross_validate(scores, same, folds, usable)
    assert len(result["folds"]) == 10
    assert 0.99 < result["accuracy_mean"] < 1.0
    assert result["pairs_without_a_vector"] == 1
    table = result["platt"]["reliability"]
    assert sum(row["pairs"] for row in table) == len(scores) - 1
    assert result["platt"]["brier"] < 0.01
    points = {p["target_fmr"]: p for p in result["operating_points"]}
    assert points[1e-2]["negatives"] == 3000
    assert points[1e-2]["fmr"] < 0.03  # near its target on held-out folds
    assert points[1e-3]["threshold_mean"] > points[1e-2]["threshold_mean"]


def test_reliability_table_bins_predictions() -> None:
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.55])
    same = np.array([False, False, True, False, True])
    rows = {tuple(r["bin"]): r for r in reliability_table(p, same)}
    assert rows[(0.0, 0.1)]["pairs"] == 2
    assert rows[(0.0, 0.1)]["fraction_same"] == 0
    assert rows[(0.9, 1.0)]["fraction_same"] == 0.5
    assert rows[(0.5, 0.6)]["mean_probability"] == 0.55


def test_negative_tail_measures_each_half_on_the_other() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = [f"person{i // 4}" for i in range(400)]
    found = np.ones(400, bool)
    found[7] = False
    tail = negative_tail(vectors, found, labels, positives=np.array([0.5, 0.9]), chunk=64)
    assert tail["images"] == 399
    assert sum(tail["negatives_per_half"]) > 0
    point = tail["operating_points"][0]  # FMR 1e-2: measurable on ~20,000 pairs a half
    assert point["target_fmr"] == 1e-2
    assert 0.003 < point["fmr"] < 0.03
    # What a gallery of a million would see: the measured rate, not the target.
    assert point["expected_false_matches_in_a_million"] == pytest.approx(
        point["fmr"] * 1e6, abs=0.1
    )


# --- the committed calibration ------------------------------------------------------------


def committed() -> Calibration:
    calibration = calibration_for(MODEL)
    assert calibration is not None, f"no calibration for {MODEL}: run `facesearch calibrate`"
    return calibration


def test_the_product_model_has_a_calibration_for_its_own_weights() -> None:
    for version in (MODEL, PRODUCT):
        calibration = calibration_for(version)
        assert calibration is not None, f"no calibration for {version}: run facesearch calibrate"
        assert calibration.model == version
        # A calibration holds for the weights it was fitted with; other weights need a refit.
        assert calibration.weights_sha256 == get_spec(MODEL).weights_sha256


def test_the_calibration_is_of_the_products_recipe() -> None:
    """The product's recipe (crop, alignment, flip, detector settings) makes its vectors: a
    change there is a change of scores, and the calibration must be refitted (`facesearch
    calibrate`, which embeds with the configured pipeline)."""
    pipeline = build_pipeline(Settings(_env_file=None))  # type: ignore[call-arg]
    assert pipeline.embedding_version == PRODUCT
    stored = json.loads((CALIBRATION_DIR / f"{PRODUCT}.json").read_text())
    assert stored["recipe"] == json.loads(json.dumps(FaceNetMtcnn(pipeline).describe())), (
        "the product's embedding recipe changed: run `facesearch calibrate` and commit "
        f"core/calibration/{pipeline.embedding_version}.json"
    )


def test_the_evaluation_report_quotes_the_calibration_of_its_own_recipe() -> None:
    """`facesearch eval`'s report quotes the committed calibration of the recipe it measured
    (files are named by embedding version), and says so when none was fitted on it."""
    pipeline = build_pipeline(Settings(_env_file=None))  # type: ignore[call-arg]
    described = {"mtcnn-facenet": {"description": FaceNetMtcnn(pipeline).describe()}}
    text = "\n".join(eval_report_notes(described))
    stored = json.loads((CALIBRATION_DIR / f"{PRODUCT}.json").read_text())
    assert f"core/calibration/{PRODUCT}.json" in text
    assert f"at score {stored['threshold']:.4f}" in text
    assert "another recipe" not in text

    other = {**described["mtcnn-facenet"]["description"], "min_confidence": 0.5}
    text = "\n".join(eval_report_notes({"mtcnn-facenet": {"description": other}}))
    assert "was fitted on another recipe of these vectors" in text


def test_the_original_recipes_calibration_is_kept_for_galleries_not_yet_reembedded() -> None:
    """Faces of the original recipe (named by the model alone) are served until `facesearch
    reembed` switches a gallery: their verdicts come from the file fitted on them."""
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    pipeline = FacePipeline(
        model_name=defaults.model_name,
        weights_dir=defaults.model_dir,
        max_faces=defaults.max_faces_per_image,
        batch_size=defaults.pipeline_batch_size,
        max_detect_side=defaults.detect_max_side or None,
    )
    assert pipeline.embedding_version == MODEL
    stored = json.loads((CALIBRATION_DIR / f"{MODEL}.json").read_text())
    recipe = json.loads(json.dumps(FaceNetMtcnn(pipeline).describe()))
    # That file was fitted before the recipe's options were named in a description: it
    # names the rest, and the options were all off.
    assert stored["recipe"] == {k: recipe[k] for k in stored["recipe"]}
    assert (recipe["align"], recipe["flip"], recipe["second_pass"]) == (False, False, None)


def test_calibration_is_monotone_and_bounded() -> None:
    calibration = committed()
    grid = [i / 500 for i in range(-500, 501)]
    p = [calibration.probability(s) for s in grid]
    assert all(0 <= x <= 1 for x in p)
    assert all(b >= a for a, b in itertools.pairwise(p))
    assert p[0] < 0.01 < 0.99 < p[-1]
    order = {"different": 0, "uncertain": 1, "same": 2}
    verdicts = [order[calibration.verdict(s)] for s in grid]
    assert verdicts == sorted(verdicts)
    assert set(verdicts) == {0, 1, 2}
    # Never certain, and no overflow at absurd scores.
    assert calibration.probability(1e9) == 0.999999
    assert calibration.probability(-1e9) == 0.000001


def test_a_model_without_a_calibration_gets_no_verdict() -> None:
    assert same_person(0.95, "some-other-model") == {"probability": None, "verdict": None}
    assert same_person(0.95, None) == {"probability": None, "verdict": None}
    assert calibration_for("../../etc/passwd") is None


# --- rendering ------------------------------------------------------------------------------


def search_face(*scores: float) -> SearchFace:
    face = SearchFace(face_index=0, box_x=1, box_y=2, box_w=30, box_h=40, confidence=0.99)
    face.landmarks = {}
    for rank, score in enumerate(scores, start=1):
        face.matches.append(
            SearchMatch(
                rank=rank, score=score, image_id=rank, face_id=rank, label=f"p{rank}",
                box_x=0, box_y=0, box_w=10, box_h=10,
            )
        )  # fmt: skip
    return face


def test_render_gives_every_match_its_verdict() -> None:
    calibration = committed()
    high = calibration.same_at_or_above + 0.05
    low = calibration.different_at_or_below - 0.05
    rendered = render_search_face(search_face(high, low), model=MODEL)
    first, second = rendered["matches"]
    assert first["same_person"]["verdict"] == "same"
    assert first["same_person"]["probability"] >= 0.99
    assert second["same_person"]["verdict"] == "different"
    assert second["same_person"]["probability"] <= 0.01
    assert rendered["message"] is None  # someone is the same person: the matches say it

    strangers = render_search_face(search_face(low), model=MODEL)
    assert strangers["message"].startswith("No one in the gallery is the same person")

    uncalibrated = render_search_face(search_face(high), model="some-other-model")
    assert uncalibrated["matches"][0]["same_person"] == {"probability": None, "verdict": None}
    assert uncalibrated["message"] is None


def test_render_says_no_one_plainly_when_nothing_is_left() -> None:
    rendered = render_search_face(search_face(), model=MODEL, min_probability=0.99)
    assert rendered["matches"] == []
    assert rendered["message"] == (
        "No one in the gallery: no face is the same person with a probability of at least 0.99."
    )
    assert render_search_face(search_face(), model=MODEL)["message"].startswith(
        "No one in the gallery"
    )


# --- the API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.5", "-0.1", "often", "nan", "inf"])
def test_invalid_min_probability_is_a_422_that_names_it(client: FlaskClient, value: str) -> None:
    response = search(client, jpeg(21), min_probability=value)
    assert response.status_code == 422
    assert "min_probability" in error_of(response)["message"]


def test_min_probability_is_kept_with_the_search(client: FlaskClient) -> None:
    body = search(client, jpeg(22), min_probability="0.99").get_json()
    result = client.get(body["search_url"]).get_json()
    assert result["min_probability"] == 0.99
    plain = client.get(search(client, jpeg(23)).get_json()["search_url"]).get_json()
    assert plain["min_probability"] is None


def test_min_probability_is_refused_for_a_model_without_calibration(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(settings.model_copy(update={"model_name": "uncalibrated-model"}), sessions)
    response = search(client, jpeg(24), min_probability="0.5")
    assert response.status_code == 422
    assert "no same-person calibration" in error_of(response)["message"]


# --- real faces through the worker ----------------------------------------------------------


@pytest.fixture
def harness(
    settings: Settings, sessions: sessionmaker[Session], face_pipeline: Any
) -> Iterator[Harness]:
    with VectorIndex(settings.milvus_uri, index_type="FLAT") as index:
        yield Harness(settings, sessions, face_pipeline, index)


def searched(harness: Harness, data: bytes, **form: str) -> dict[str, Any]:
    body = search(harness.client, data, top_k="3", **form).get_json()
    harness.run_search(body["search_id"])
    result: dict[str, Any] = harness.client.get(body["search_url"]).get_json()
    assert result["status"] == "succeeded", result
    return result


def main_face(result: dict[str, Any]) -> dict[str, Any]:
    face: dict[str, Any] = max(
        result["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"]
    )
    return face


@pytest.mark.slow
def test_real_faces_same_person_and_stranger(
    harness: Harness, lfw_faces: dict[str, list[LfwImage]], session: Session
) -> None:
    albert = lfw_faces["Albert_Costa"]
    harness.ingest(files(albert[1:]), label="Albert_Costa")  # image 0 is the query
    harness.ingest(files(lfw_faces["Abdullah_Gul"]), label="Abdullah_Gul")

    # His other photo: judged the same person.
    result = searched(harness, albert[0].data)
    assert result["calibrated"] is True
    top = main_face(result)["matches"][0]
    assert top["label"] == "Albert_Costa"
    assert top["same_person"]["verdict"] == "same", top
    assert top["same_person"]["probability"] >= 0.99

    # A stranger (not in the gallery): no match is judged the same person, and it says so.
    stranger = lfw_faces["Ai_Sugiyama"][0].data
    face = main_face(searched(harness, stranger))
    assert face["matches"], "without min_probability the nearest faces are still listed"
    assert all(m["same_person"]["verdict"] != "same" for m in face["matches"]), face
    assert face["message"].startswith("No one in the gallery")

    # With min_probability the stranger's answer is empty and plain; Albert's keeps his own.
    kept = searched(harness, stranger, min_probability="0.99")
    assert kept["min_probability"] == 0.99
    face = main_face(kept)
    assert face["matches"] == []
    assert face["message"].startswith("No one in the gallery: no face is the same person")
    kept = main_face(searched(harness, albert[0].data, min_probability="0.99"))
    assert kept["matches"]
    assert all(m["label"] == "Albert_Costa" for m in kept["matches"])
    assert all(m["same_person"]["probability"] >= 0.99 for m in kept["matches"])

    # The webhook payload is the same rendering: the verdicts are in it.
    latest = session.get_one(Search, result["id"])
    payload_face = main_face(search_result_data(session, latest))
    assert payload_face["matches"][0]["same_person"] == top["same_person"]


def test_cli_prints_the_verdicts_and_the_plain_answer(capsys: pytest.CaptureFixture[str]) -> None:
    box = {"x": 1, "y": 2, "width": 30, "height": 40}
    match = {"rank": 1, "score": 0.81, "image_id": 7, "label": "Ada"}
    result = {
        "status": "succeeded",
        "faces": [
            {
                "box": box,
                "confidence": 0.99,
                "message": None,
                "matches": [{**match, "same_person": {"probability": 0.9997, "verdict": "same"}}],
            },
            {
                "box": box,
                "confidence": 0.98,
                "message": "No one in the gallery: no face is the same person ...",
                "matches": [],
            },
            {
                "box": box,
                "confidence": 0.97,
                "message": None,
                "matches": [{**match, "same_person": {"probability": None, "verdict": None}}],
            },
        ],
    }
    print_table(result)
    out = capsys.readouterr().out
    assert "same (99.97%)" in out
    assert "No one in the gallery: no face is the same person" in out
    assert out.count("same person?") == 2  # the two faces with matches have a table
