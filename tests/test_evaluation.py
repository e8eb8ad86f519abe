"""The evaluation: metrics against hand-computed rankings, the protocol's edge cases, and a
small end-to-end run of the real pipelines on a few LFW identities."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cli.lfw import LfwImage
from evaluation.dataset import Dataset, decode, parse_pairs
from evaluation.embedders import (
    EmbeddingCache,
    FaceNetCentreCrop,
    ResNet50Embedder,
    WeightsUnavailableError,
    centre_crop,
    embed_dataset,
)
from evaluation.invocation import command_line, redacted
from evaluation.metrics import (
    average_precision,
    precision_at_k,
    r_precision,
    rank1,
    rank_order,
    recall_at_k,
    relevant_ranks,
    summarize,
    truncate,
)
from evaluation.report import write_report
from evaluation.runner import EvalConfig, evaluate, queries_of
from evaluation.search import exact_knn
from evaluation.verification import best_threshold, verify

# --- metrics ---------------------------------------------------------------------------------


def test_metrics_of_a_hand_computed_ranking() -> None:
    # Relevant at ranks 1, 3 and 6; a 4th relevant item is never retrieved.
    ranks = relevant_ranks([True, False, True, False, False, True])
    assert ranks.tolist() == [1, 3, 6]
    assert rank1(ranks) == 1.0
    assert precision_at_k(ranks, 1) == 1.0
    assert precision_at_k(ranks, 5) == pytest.approx(2 / 5)
    assert recall_at_k(ranks, 4, 5) == pytest.approx(2 / 4)
    assert r_precision(ranks, 4) == pytest.approx(2 / 4)  # 2 of the top 4
    assert average_precision(ranks, 4) == pytest.approx((1 / 1 + 2 / 3 + 3 / 6) / 4)


def test_k_larger_than_the_relevant_set() -> None:
    ranks = np.array([1, 2])  # both relevant items first
    assert precision_at_k(ranks, 10) == pytest.approx(0.2)  # still over k
    assert recall_at_k(ranks, 2, 10) == 1.0
    assert r_precision(ranks, 2) == 1.0
    assert average_precision(ranks, 2) == 1.0


def test_a_miss_and_a_query_without_relevant_items() -> None:
    nothing = np.array([], dtype=np.int64)
    assert rank1(nothing) == 0.0
    assert precision_at_k(nothing, 10) == 0.0
    assert average_precision(nothing, 3) == 0.0
    assert recall_at_k(nothing, 3, 10) == 0.0
    # No relevant item exists: recall, R-precision and AP are undefined, not 0 or 1.
    assert math.isnan(recall_at_k(nothing, 0, 10))
    assert math.isnan(r_precision(nothing, 0))
    assert math.isnan(average_precision(nothing, 0))
    with pytest.raises(ValueError, match="at least one relevant"):
        summarize([nothing], [0], ["a"])
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(nothing, 0)


def test_ties_are_pessimistic_and_deterministic() -> None:
    scores = np.array([0.9, 0.5, 0.9, 0.5, 0.7])
    relevant = np.array([True, False, False, True, False])
    # 0.9: the non-relevant item 2 before the relevant 0; 0.5: 1 before 3.
    order = rank_order(scores, relevant)
    assert order.tolist() == [2, 0, 4, 1, 3]
    assert relevant_ranks(relevant[order]).tolist() == [2, 5]
    # Equal scores and equal relevance: gallery position decides; rows are independent.
    both = rank_order(np.array([[0.5, 0.5, 0.5], [0.1, 0.3, 0.3]]), np.zeros((2, 3), bool))
    assert both.tolist() == [[0, 1, 2], [1, 2, 0]]


def test_truncated_rankings_are_lower_bounds() -> None:
    ranks = np.array([1, 50, 150])
    cut = truncate(ranks, 100)
    assert cut.tolist() == [1, 50]
    assert average_precision(cut, 3) < average_precision(ranks, 3)
    assert r_precision(cut, 3) == r_precision(ranks, 3)  # R = 3 is within the depth


def test_summary_averages_over_queries_and_over_identities() -> None:
    # Identity a: one query, found at rank 1; identity b: three queries, rank 2 each.
    ranks = [np.array([1]), np.array([2]), np.array([2]), np.array([2])]
    summary = summarize(ranks, [1, 1, 1, 1], ["a", "b", "b", "b"], k=1, curve_to=3)
    assert summary.queries == 4
    assert summary.identities == 2
    assert summary.per_query["rank1"] == pytest.approx(0.25)
    assert summary.per_identity["rank1"] == pytest.approx(0.5)
    assert summary.per_query["map"] == pytest.approx((1 + 3 * 0.5) / 4)
    assert summary.per_identity["map"] == pytest.approx((1 + 0.5) / 2)
    assert summary.precision_curve == pytest.approx([0.25, 0.5, 1 / 3])


def test_identities_with_one_image_are_gallery_only() -> None:
    queries, n_relevant = queries_of(["solo", "b", "b", "c", "c", "c"])
    assert queries.tolist() == [1, 2, 3, 4, 5]
    assert n_relevant.tolist() == [1, 1, 2, 2, 2]


def test_exact_knn_leaves_out_the_query_and_faceless_images() -> None:
    vectors = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1], [1, 0]], np.float32)
    labels = np.array([0, 0, 1, 1, 0])
    found = np.array([True, True, True, True, False])  # image 4: no face
    queries, n_relevant = queries_of(["a", "a", "b", "b", "a"])
    result = exact_knn(vectors, found, labels, queries, block=2)
    by_query = dict(zip(queries.tolist(), result.ranks, strict=True))
    # Query 0: itself left out; 1 is nearest (relevant, rank 1); 4 has no vector, so the
    # second relevant item is never found.
    assert by_query[0].tolist() == [1]
    assert result.top[0, :3].tolist() == [1, 2, 3]
    assert by_query[3].tolist() == [1]  # 2 is nearest to 3
    assert by_query[4].tolist() == []  # a query without a face finds nothing
    assert (result.top[4] == -1).all()
    summary = summarize(result.ranks, n_relevant, ["a", "a", "b", "b", "a"])
    # Queries 1 and 2 find someone else first (2 and 1 are each other's nearest).
    assert summary.per_query["rank1"] == pytest.approx(2 / 5)


# --- verification ---------------------------------------------------------------------------


def test_pairs_map_names_and_numbers_to_archive_members() -> None:
    lines = ["2\t1", "A_B\t1\t12", "A_B\t3\tC_D\t2", "C_D\t1\t2", "A_B\t1\tC_D\t1"]
    pairs = parse_pairs(lines)
    assert [(p.fold, p.first, p.second, p.same) for p in pairs] == [
        (0, "A_B/A_B_0001.jpg", "A_B/A_B_0012.jpg", True),
        (0, "A_B/A_B_0003.jpg", "C_D/C_D_0002.jpg", False),
        (1, "C_D/C_D_0001.jpg", "C_D/C_D_0002.jpg", True),
        (1, "A_B/A_B_0001.jpg", "C_D/C_D_0001.jpg", False),
    ]
    with pytest.raises(ValueError, match="announces"):
        parse_pairs(lines[:-1])


def test_best_threshold_separates_and_prefers_the_smallest() -> None:
    distances = np.array([0.1, 0.2, 0.8, 0.9])
    same = np.array([True, True, False, False])
    assert best_threshold(distances, same) == pytest.approx(0.5)
    # Two equally good thresholds (each makes one error): the smaller one.
    assert best_threshold(np.array([0.1, 0.5, 0.9]), np.array([True, False, True])) == (
        pytest.approx(0.3)
    )


def test_verification_counts_pairs_without_a_vector_as_errors() -> None:
    keys = ["A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg", "B/B_0002.jpg"]
    index_of = {k: i for i, k in enumerate(keys)}
    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]], np.float32)
    lines = ["2\t2"]
    lines += ["A\t1\t2", "B\t1\t2", "A\t1\tB\t1", "A\t2\tB\t2"] * 2
    everything = verify(parse_pairs(lines), vectors, np.ones(4, bool), index_of)
    assert everything["accuracy_mean"] == 1.0
    assert everything["accuracy_std"] == 0.0
    found = np.array([True, True, True, False])  # B_0002 has no face: 2 pairs per fold
    partial = verify(parse_pairs(lines), vectors, found, index_of)
    assert partial["pairs_without_a_vector"] == 4
    assert partial["fold_accuracies"] == [0.5, 0.5]


# --- embedders and the cache ------------------------------------------------------------------


def test_centre_crop_takes_the_centred_square() -> None:
    image = np.zeros((100, 60, 3), np.uint8)
    image[20:80] = 255  # the centred 60x60 square
    crop = centre_crop(image, 30)
    assert crop.shape == (30, 30, 3)
    assert crop.min() == 255


# --- end to end on real faces -----------------------------------------------------------------


@pytest.mark.slow
def test_evaluation_end_to_end_on_a_few_identities(
    product_pipeline,  # type: ignore[no-untyped-def]
    lfw_faces: dict[str, list[LfwImage]],
    tmp_path: Path,
) -> None:
    images = [image for label in sorted(lfw_faces) for image in lfw_faces[label]]
    dataset = Dataset.from_images(images)
    keys = dataset.index_of()
    assert "Albert_Costa/Albert_Costa_0006.jpg" in keys
    # One fold of matched pairs and mismatched pairs per identity pair, twice (2 folds).
    pairs = ["2\t2"]
    pairs += ["Albert_Costa\t1\t2", "Ai_Sugiyama\t1\t3"]
    pairs += ["Albert_Costa\t3\tAi_Sugiyama\t2", "Abdullah_Gul\t1\tAlejandro_Toledo\t1"]
    pairs += ["Abdullah_Gul\t2\t3", "Alejandro_Toledo\t2\t4"]
    pairs += ["Albert_Costa\t4\tAbdullah_Gul\t4", "Ai_Sugiyama\t4\tAlejandro_Toledo\t3"]
    config = EvalConfig(
        archive=Path("lfw-subset"),
        pairs=None,
        out_dir=tmp_path / "report",
        cache_dir=tmp_path / "cache",
        pipelines=["resnet50-knn", "mtcnn-facenet-knn", "mtcnn-facenet-milvus"],
        resnet50_weights=None,
        command="pytest",
    )
    data = evaluate(config, pipeline=lambda: product_pipeline, dataset=dataset, pairs_lines=pairs)
    rows = data["pipelines"]
    assert data["queries"] == 18
    assert data["query_identities"] == 4
    # Never random weights: without the file the row is not run.
    assert rows["resnet50-knn"]["status"].startswith("not run: weights unavailable")
    exact, indexed = rows["mtcnn-facenet-knn"], rows["mtcnn-facenet-milvus"]
    assert exact["status"] == indexed["status"] == "ok"
    # 18 images of 4 well-separated people: FaceNet ranks every same-person photo first.
    assert exact["metrics"]["per_query"]["map"] == 1.0
    assert exact["verification"]["accuracy_mean"] == 1.0
    assert [s["found_in_top"] for s in exact["showcase"]] == [5] * 6
    # On 18 vectors the index loses nothing against exact search.
    assert indexed["metrics"]["per_query"] == exact["metrics_at_depth_100"]["per_query"]
    assert indexed["ranking"]["rows"] == 18
    assert indexed["ranking"]["neighbour_recall"] == 1.0
    assert data["embedders"]["mtcnn-facenet"]["images_without_a_vector"] == 0

    paths = write_report(data, config.out_dir)
    saved = json.loads(paths["json"].read_text())
    assert saved["pipelines"]["mtcnn-facenet-knn"]["showcase"][0]["found_in_top"] == 5
    markdown = paths["markdown"].read_text()
    assert "`resnet50-knn` | not run: weights unavailable" in markdown
    assert paths["curve"].stat().st_size > 0
    assert paths["grid"].stat().st_size > 0

    # The second run embeds nothing: every vector comes from the cache.
    again = evaluate(config, pipeline=lambda: product_pipeline, dataset=dataset, pairs_lines=pairs)
    assert again["embedders"]["mtcnn-facenet"]["embedded_now"] == 0
    assert again["pipelines"]["mtcnn-facenet-knn"]["metrics"] == exact["metrics"]


@pytest.mark.slow
def test_cache_is_keyed_by_image_hash(
    face_pipeline,  # type: ignore[no-untyped-def]
    lfw_faces: dict[str, list[LfwImage]],
    tmp_path: Path,
) -> None:
    first = Dataset.from_images(lfw_faces["Abdullah_Gul"][:2])
    embedder = FaceNetCentreCrop(face_pipeline)
    done, _ = embed_dataset(embedder, first, EmbeddingCache(tmp_path, embedder))
    # The same bytes under other names, plus one new image: only the new one is embedded.
    renamed = Dataset.from_images(
        [LfwImage("X", f"X_000{i}.jpg", im.data) for i, im in enumerate(lfw_faces["Abdullah_Gul"])]
    )
    cache = EmbeddingCache(tmp_path, embedder)
    assert cache.missing(renamed.hashes) == [2, 3]
    again, _ = embed_dataset(embedder, renamed, cache)
    np.testing.assert_array_equal(again.vectors[:2], done.vectors)
    assert again.found.all()


def test_resnet50_without_weights_is_not_run(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="not at"):
        ResNet50Embedder(tmp_path / "absent.h5")
    with pytest.raises(WeightsUnavailableError, match="RESNET50_WEIGHTS"):
        ResNet50Embedder(None)


@pytest.mark.slow
def test_resnet50_loads_a_local_weights_file(
    lfw_faces: dict[str, list[LfwImage]], tmp_path: Path
) -> None:
    """The real Keras loading code with a local file. The file here is a freshly initialised
    network saved for the test (ImageNet weights cannot be downloaded here): it checks the
    plumbing (architecture, file, 2048-d unit vectors), not retrieval quality."""
    import keras

    path = tmp_path / "resnet50.weights.h5"
    keras.applications.ResNet50(weights=None, include_top=False, pooling="avg").save_weights(path)
    embedder = ResNet50Embedder(path)
    assert embedder.describe()["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    images = [decode(image.data) for image in lfw_faces["Albert_Costa"][:2]]
    result = embedder.embed(images)
    assert result.vectors.shape == (2, 2048)
    assert result.found.all()
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-5)


def test_eval_command_refuses_an_unknown_pipeline(lfw_archive: Path) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(
        cli, ["eval", "--archive", str(lfw_archive), "--pipeline", "nope-knn"]
    )
    assert result.exit_code == 2
    assert "mtcnn-facenet-milvus" in result.output


def test_a_report_never_records_the_api_key_it_was_run_with() -> None:
    key = "fsk_0123abcd_secretsecret"
    line = command_line(["eval", "--through-api", "--key", key, "--queries", "2000"])
    assert line == "facesearch eval --through-api --key '$FACESEARCH_KEY' --queries 2000"
    assert redacted(["facesearch", f"--key={key}", "--seed", "0"]) == [
        "facesearch",
        "--key=$FACESEARCH_KEY",
        "--seed",
        "0",
    ]
    assert key not in command_line(["eval", "--key", key])
