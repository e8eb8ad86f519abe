"""``facesearch eval --through-api`` on a few LFW identities: ingested and searched through a
real API and a real worker, the product's figures equal the in-process harness's, query by
query, because both apply the same face rule."""

from __future__ import annotations

import io
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from PIL import Image as PILImage

from api import create_app
from api.context import EXTENSION
from cli.lfw import LfwImage
from core.settings import Settings
from evaluation.dataset import Dataset
from evaluation.product_path import (
    compare,
    comparison_table,
    harness_ranks,
    run_product_path,
    sample_queries,
)
from tests.conftest import MODEL_DIR, create_database, drop_database, migrate
from tests.worker_process import make_api_key, start_worker, stop_worker

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A worker (every queue) and the API on a loopback port, on a database of their own:
    (the API's URL, an admin key for every gallery)."""
    from werkzeug.serving import make_server

    data_dir = tmp_path_factory.mktemp("product-path")
    redis_url = f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    redis.Redis.from_url(redis_url).flushdb()
    database_url = create_database()
    migrate(database_url)
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "BROKER_URL": redis_url,
        "STORAGE_URL": f"file://{data_dir / 'objects'}",
        "MILVUS_URI": str(data_dir / "milvus.db"),
        "MILVUS_INDEX_TYPE": "FLAT",  # exact, as the harness's k-NN
        "MODEL_DIR": str(MODEL_DIR),
        "LOG_JSON": "true",
    }
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=redis_url,
        storage_url=env["STORAGE_URL"],
        milvus_uri=env["MILVUS_URI"],
        model_dir=MODEL_DIR,
    )
    worker = start_worker(env, data_dir / "worker.log")
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", make_api_key(database_url, gallery=None)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions[EXTENSION].close()
        stop_worker(worker)
        redis.Redis.from_url(redis_url).flushdb()
        drop_database(database_url)


def two_people(big: LfwImage, small: LfwImage) -> bytes:
    """``big``'s photo beside ``small``'s at half size: one image, two faces."""
    canvas = np.full((250, 375, 3), 255, np.uint8)
    with PILImage.open(io.BytesIO(big.data)) as opened:
        canvas[:, :250] = np.asarray(opened.convert("RGB").resize((250, 250)))
    with PILImage.open(io.BytesIO(small.data)) as opened:
        canvas[60:185, 250:] = np.asarray(opened.convert("RGB").resize((125, 125)))
    buffer = io.BytesIO()
    PILImage.fromarray(canvas).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_the_product_path_agrees_with_the_harness_query_by_query(
    served: tuple[str, str],
    lfw_faces: dict[str, list[LfwImage]],
    product_pipeline: Any,
    tmp_path: Path,
) -> None:
    images = [image for group in lfw_faces.values() for image in group]
    # A photo labelled Ai_Sugiyama that also shows Abdullah Gul: indexed with his face
    # unlabelled, it must not answer his queries with her name.
    group = two_people(lfw_faces["Ai_Sugiyama"][1], lfw_faces["Abdullah_Gul"][2])
    images.append(LfwImage("Ai_Sugiyama", "Ai_Sugiyama_0099.jpg", group))
    dataset = Dataset.from_images(images)
    queries = sample_queries(dataset.labels, 2000, seed=0)
    assert len(queries) == len(dataset)  # every image's identity has several: all are asked

    url, key = served
    product = run_product_path(dataset, queries, url=url, key=key, quiet=True)
    assert product.job["status"] == "succeeded", product.job
    assert sorted(product.image_of) == list(range(len(dataset)))
    # The recipe the served worker embeds with (the default settings), as `facesearch eval
    # --through-api` builds it.
    ranks, _ = harness_ranks(dataset, queries, pipeline=product_pipeline, cache_dir=tmp_path)
    result = compare(dataset, product, ranks)
    print("\n".join(comparison_table(result)))  # shown with -s: the figures side by side

    assert result["queries_with_several_faces"] >= 1  # the two-person photo, as a query
    assert result["rank1_disagreements"] == []
    for name, difference in result["difference_product_minus_harness"].items():
        assert difference["mean"] == pytest.approx(0.0, abs=1e-9), name
    harness, through_api = result["figures"]["harness_cut"], result["figures"]["product_labelled"]
    assert through_api == harness
    # Nothing was cut: the gallery is smaller than top_k.
    assert result["figures"]["harness"] == harness
    # Abdullah Gul's unlabelled face in the group photo is in the index: counted as a wrong
    # answer, it can only lower the figures.
    strict = result["figures"]["product_all"]
    assert strict["map"]["mean"] <= through_api["map"]["mean"]
    gul = [a for a in product.answers if dataset.labels[a.query] == "Abdullah_Gul"]
    assert all(m[1] != "Ai_Sugiyama" for a in gul for m in a.matches[:1])
