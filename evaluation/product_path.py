"""``facesearch eval --through-api``: the harness run through the product itself.

LFW (or its first ``max_images`` images) is ingested through the API and its workers into a
fresh gallery, as ``facesearch ingest`` does it (the archive streamed to ``POST
/v1/archives`` with labels from folders, through the generated client); then ``queries``
random LFW query images (seeded) go through ``POST /v1/searches``. Of each search's faces
the query face is the one the product gives an image's label to
(``models.face.prominent_face``); the matches of the query's own image are dropped.

The in-process harness ranks the same queries over the same images (its vectors: one a
image, the face the same rule picks), and both are summarised by ``evaluation.metrics`` side
by side, with standard errors over the queries. They agree by construction, up to what
differs between the two paths (which this comparison is here to find): the product's vector
index (HNSW is approximate; FLAT is exact), a duplicate image stored once, and floating-point
noise. Two ways of reading the product's matches are given:

* ``labelled`` (comparable with the harness): unlabelled matches are left out. An image's
  faces other than its most prominent one are indexed unlabelled; LFW names only the
  subject, so who they are is unknown, and they are neither right nor wrong.
* ``all matches``: an unlabelled match counts as a wrong answer, as a user reading the list
  would count it: what the extra faces cost.

Lower bounds: the API returns at most ``top_k`` (100) matches a face, so relevant images
ranked below (after dropping the query's own image and, in ``labelled``, unlabelled matches)
count as never found: recall@k, R-precision and mAP are lower bounds for identities with
many images; the harness's rankings are cut at the same depth, query by query, so the two
columns stay comparable. Images in which no face was found are in every query's relevant
count yet can never be found (in both paths); a query image without a face finds nothing.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import numpy as np
from facesearch_client import AuthenticatedClient
from facesearch_client.api.galleries import post_v1_galleries
from facesearch_client.api.jobs import get_v1_jobs_job_id_items
from facesearch_client.api.searches import get_v1_searches_search_id, post_v1_searches
from facesearch_client.models import (
    ErrorOut,
    GalleryIn,
    GalleryOut,
    JobItemsOut,
    SearchCreatedOut,
    SearchIn,
    SearchOut,
    SearchWaitedOut,
)
from facesearch_client.types import UNSET, File, Unset

from cli.ingest import follow, upload
from models.face import prominent_face

from .dataset import Dataset
from .embedders import EmbeddingCache, EmbedResult, FaceNetMtcnn, embed_dataset
from .metrics import (
    average_precision,
    precision_at_k,
    r_precision,
    rank1,
    recall_at_k,
    truncate,
)
from .runner import queries_of
from .search import exact_knn

if TYPE_CHECKING:
    from workers.pipeline import FacePipeline

__all__ = [
    "ProductPath",
    "QueryAnswer",
    "compare",
    "comparison_table",
    "harness_ranks",
    "ingest_dataset",
    "query_answers",
    "read_answer",
    "run_product_path",
    "sample_queries",
    "write_archive",
]

T = TypeVar("T")
API_MAX_TOP_K = 100  # SearchIn.top_k's bound
SEARCH_WAIT_S = 30  # Prefer: wait=N, the API's most
FINISHED = ("succeeded", "failed", "cancelled")
METRICS = ("rank1", "precision@{k}", "recall@{k}", "r_precision", "map")


@dataclass
class QueryAnswer:
    """One query's search, read the product's way."""

    query: int  # dataset position
    faces: int  # faces found in the query photo
    # The chosen face's matches, best first, the query's own image left out:
    # (dataset position of the matched image or -1, its label or None, score).
    matches: list[tuple[int, str | None, float]] = field(default_factory=list)
    error: str | None = None


@dataclass
class ProductPath:
    gallery: str
    job: dict[str, Any]
    image_of: dict[int, int]  # dataset position -> image id (duplicates share one)
    answers: list[QueryAnswer]
    top_k: int
    seconds: dict[str, float]


def sample_queries(labels: Sequence[str], n: int, seed: int) -> np.ndarray:
    """``n`` of the harness's queries (images of identities with two or more), at random
    (seeded), in dataset order; all of them when there are fewer."""
    queries, _ = queries_of(list(labels))
    if n >= len(queries):
        return queries
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(queries, size=n, replace=False))


def write_archive(dataset: Dataset, path: Path) -> Path:
    """The dataset as an LFW-layout ``.tgz`` (``lfw/Name/Name_NNNN.jpg``): what ``facesearch
    ingest`` uploads, for a subset of the archive."""
    with tarfile.open(path, "w:gz") as archive:
        for i in range(len(dataset)):
            info = tarfile.TarInfo(f"lfw/{dataset.key(i)}")
            info.size = len(dataset.data[i])
            archive.addfile(info, io.BytesIO(dataset.data[i]))
    return path


def _member_key(name: str) -> str:
    """An archive member's ``Name/Name_NNNN.jpg`` (its last two path parts)."""
    return "/".join(name.replace("\\", "/").split("/")[-2:])


def _create_gallery(client: AuthenticatedClient, name: str) -> None:
    answer = post_v1_galleries.sync_detailed(client=client, body=GalleryIn(name=name))
    if not isinstance(answer.parsed, GalleryOut):
        message = answer.parsed.error.message if isinstance(answer.parsed, ErrorOut) else ""
        raise RuntimeError(
            f"could not make gallery {name!r} ({int(answer.status_code)}): {message} "
            "(a fresh gallery needs an admin key for every gallery)"
        )


def _image_ids(client: AuthenticatedClient, job_id: str, dataset: Dataset) -> dict[int, int]:
    """Dataset position -> image id, from the job's items, page by page."""
    position = dataset.index_of()
    found: dict[int, int] = {}
    cursor: int | Unset = UNSET
    while True:
        page = _again(
            partial(get_v1_jobs_job_id_items.sync, job_id, client=client, limit=500, cursor=cursor)
        )
        if not isinstance(page, JobItemsOut):
            raise RuntimeError(f"job {job_id}: its items could not be read: {page}")
        body = page.to_dict()
        for item in body["items"]:
            i = position.get(_member_key(item["name"]))
            if i is not None and item.get("image_id") is not None:
                found[i] = int(item["image_id"])
        if not body.get("next_cursor"):
            return found
        cursor = int(body["next_cursor"])


def _again(call: Callable[[], T], attempts: int = 5) -> T:
    """``call()``, tried again after a dropped connection (a keep-alive connection the server
    closed as it was reused): every call retried here is safe to repeat."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except httpx.TransportError:
            if attempt == attempts:
                raise
            time.sleep(attempt)
    raise AssertionError("unreachable")


def ingest_dataset(
    client: AuthenticatedClient,
    dataset: Dataset,
    archive: Path | None,
    *,
    quiet: bool,
    job_id: str | None = None,
    started: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[int, int]]:
    """Upload the archive (or the dataset written as one) and follow its job to the end: the
    job, and each dataset image's id. ``job_id``: follow that job (an earlier run's upload)
    instead; ``started(job_id)`` is told the job as soon as it exists."""
    if job_id is None:
        with tempfile.TemporaryDirectory() as folder:
            path = archive or write_archive(dataset, Path(folder) / "lfw-subset.tgz")
            job_url = upload(client, path, "folder", quiet=quiet)
        job_id = job_url.rstrip("/").rsplit("/", 1)[1]
    if started is not None:
        started(job_id)
    job = _again(lambda: follow(client, f"/v1/jobs/{job_id}", poll_s=1.0, quiet=quiet))
    if job["status"] not in ("succeeded", "partial"):
        raise RuntimeError(f"the ingest job ended {job['status']}: {job.get('error')}")
    return job, _image_ids(client, job["id"], dataset)


def _search(client: AuthenticatedClient, data: bytes, name: str, top_k: int) -> dict[str, Any]:
    # One key per search: a request sent again after a dropped connection is the same search.
    key = str(uuid.uuid4())

    def send() -> SearchCreatedOut | SearchWaitedOut | ErrorOut | None:
        body = SearchIn(file=File(payload=io.BytesIO(data), file_name=name), top_k=top_k)
        return post_v1_searches.sync(
            client=client, body=body, prefer=f"wait={SEARCH_WAIT_S}", idempotency_key=key
        )

    answer = _again(send)
    if isinstance(answer, SearchCreatedOut):  # not ended within the wait: poll it
        search_id = answer.search_id
        while True:
            polled = _again(lambda: get_v1_searches_search_id.sync(search_id, client=client))
            if not isinstance(polled, SearchOut):
                raise RuntimeError(f"search {search_id}: {polled}")
            if polled.status in FINISHED:
                return polled.to_dict()
            time.sleep(0.5)
    if not isinstance(answer, (SearchOut, SearchWaitedOut)):
        raise RuntimeError(f"the search was refused: {answer}")
    return answer.to_dict()


def read_answer(query: int, search: dict[str, Any], image_of: dict[int, int]) -> QueryAnswer:
    """The query face (the rule's), its matches without the query's own image."""
    faces = search.get("faces") or []
    answer = QueryAnswer(query=query, faces=len(faces), error=search.get("error"))
    boxes = [(f["box"]["x"], f["box"]["y"], f["box"]["width"], f["box"]["height"]) for f in faces]
    chosen = prominent_face(boxes, search["query"]["width"], search["query"]["height"])
    if chosen is None:
        return answer
    position = {image_id: i for i, image_id in image_of.items()}
    own = image_of.get(query)
    for match in faces[chosen]["matches"]:
        if match["image_id"] is not None and match["image_id"] == own:
            continue
        answer.matches.append(
            (position.get(match["image_id"], -1), match.get("label"), float(match["score"]))
        )
    return answer


def query_answers(
    client: AuthenticatedClient,
    dataset: Dataset,
    queries: np.ndarray,
    image_of: dict[int, int],
    *,
    top_k: int,
    tick: Callable[[], None] | None = None,
) -> list[QueryAnswer]:
    answers = []
    for q in queries:
        search = _search(client, dataset.data[int(q)], dataset.names[int(q)], top_k)
        answers.append(read_answer(int(q), search, image_of))
        if tick is not None:
            tick()
    return answers


def run_product_path(
    dataset: Dataset,
    queries: np.ndarray,
    *,
    url: str,
    key: str,
    archive: Path | None = None,
    top_k: int = API_MAX_TOP_K,
    gallery: str | None = None,
    quiet: bool = False,
    tick: Callable[[], None] | None = None,
    resume: str | None = None,
    on_job: Callable[[str, str], None] | None = None,
) -> ProductPath:
    """Ingest ``dataset`` (uploading ``archive`` when it is the whole of it) into a fresh
    gallery, then search with every query. ``key``: an admin key for every gallery.
    ``resume``: ``GALLERY:JOB_ID`` of an earlier run that stopped, whose ingest job is followed
    instead of making a gallery and uploading again; ``on_job(gallery, job_id)`` is told
    them as soon as the job exists."""
    job_id: str | None = None
    if resume:
        name, _, job_id = resume.partition(":")
    else:
        name = gallery or f"eval-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    timeout = httpx.Timeout(60.0, read=600.0)
    if not resume:
        with AuthenticatedClient(base_url=url, token=key, timeout=timeout) as admin:
            _create_gallery(admin, name)
    seconds: dict[str, float] = {}
    with AuthenticatedClient(
        base_url=url, token=key, timeout=timeout, headers={"Facesearch-Gallery": name}
    ) as client:
        started = time.monotonic()
        job, image_of = ingest_dataset(
            client,
            dataset,
            archive,
            quiet=quiet,
            job_id=job_id,
            started=partial(on_job, name) if on_job is not None else None,
        )
        seconds["ingest"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        answers = query_answers(client, dataset, queries, image_of, top_k=top_k, tick=tick)
        seconds["searches"] = round(time.monotonic() - started, 1)
    return ProductPath(name, job, image_of, answers, top_k, seconds)


# --- the harness's side ------------------------------------------------------------------------


def harness_ranks(
    dataset: Dataset,
    queries: np.ndarray,
    *,
    pipeline: FacePipeline,
    cache_dir: Path,
    progress: Callable[[int], Callable[[int], None]] | None = None,
) -> tuple[list[np.ndarray], EmbedResult]:
    """The in-process harness's ranks for ``queries`` (``mtcnn-facenet-knn``: the face the
    product labels, exact cosine k-NN over the dataset, the query's own image left out).
    ``progress(n)``, when images are to be embedded, returns a callback told how many were."""
    embedder = FaceNetMtcnn(pipeline)
    cache = EmbeddingCache(cache_dir, embedder)
    todo = len(cache.missing(dataset.hashes))
    tick = progress(todo) if progress is not None and todo else None
    result, _ = embed_dataset(embedder, dataset, cache, progress=tick)
    retrieval = exact_knn(result.vectors, result.found, dataset.label_ids(), queries)
    return retrieval.ranks, result


# --- the comparison ---------------------------------------------------------------------------


def _table(ranks: Sequence[np.ndarray], n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query: rank-1, precision@k, recall@k, R-precision, AP (the harness's metrics)."""
    return np.asarray(
        [
            (
                rank1(r),
                precision_at_k(r, k),
                recall_at_k(r, int(n), k),
                r_precision(r, int(n)),
                average_precision(r, int(n)),
            )
            for r, n in zip(ranks, n_relevant, strict=True)
        ],
        dtype=float,
    ).reshape(len(ranks), len(METRICS))


def _product_ranks(
    answer: QueryAnswer, label: str, *, labelled_only: bool
) -> tuple[np.ndarray, int]:
    """1-based ranks of the matches naming the query's person, and the list's length."""
    kept = [m for m in answer.matches if m[1] is not None or not labelled_only]
    relevant = [m[1] == label for m in kept]
    return np.flatnonzero(relevant) + 1, len(kept)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    se = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return mean, se


def compare(
    dataset: Dataset,
    product: ProductPath,
    harness_ranks: Sequence[np.ndarray],
    *,
    k: int = 10,
) -> dict[str, Any]:
    """Both paths' figures on the same queries, with standard errors, and the paired
    difference (product minus harness, per query) with its standard error.

    ``harness_ranks``: the in-process ranks of each of ``product.answers``' queries over the
    whole gallery; each is cut at the depth the product's list reached for that query.
    """
    _, counts = np.unique(np.asarray(dataset.labels), return_counts=True)
    per_label = dict(zip(np.unique(np.asarray(dataset.labels)).tolist(), counts, strict=True))
    labels = [dataset.labels[a.query] for a in product.answers]
    n_relevant = np.asarray([per_label[label] - 1 for label in labels])
    names = [m.format(k=k) for m in METRICS]

    product_lab = [
        _product_ranks(a, lb, labelled_only=True)
        for a, lb in zip(product.answers, labels, strict=True)
    ]
    product_all = [
        _product_ranks(a, lb, labelled_only=False)
        for a, lb in zip(product.answers, labels, strict=True)
    ]
    # The harness cut where the product's labelled list stopped, query by query. (Where the
    # product listed the whole gallery, the cut is past the harness's last rank: no cut.)
    cut = [
        truncate(np.asarray(r), depth)
        for r, (_, depth) in zip(harness_ranks, product_lab, strict=True)
    ]
    full = [np.asarray(r) for r in harness_ranks]
    tables = {
        "harness": _table(full, n_relevant, k),
        "harness_cut": _table(cut, n_relevant, k),
        "product_labelled": _table([r for r, _ in product_lab], n_relevant, k),
        "product_all": _table([r for r, _ in product_all], n_relevant, k),
    }
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for column, table in tables.items():
        figures[column] = {}
        for j, name in enumerate(names):
            mean, se = _mean_se(table[:, j])
            figures[column][name] = {"mean": mean, "se": se}
    differences: dict[str, dict[str, float]] = {}
    for j, name in enumerate(names):
        mean, se = _mean_se(tables["product_labelled"][:, j] - tables["harness_cut"][:, j])
        differences[name] = {"mean": mean, "se": se}
    disagree = [
        dataset.key(a.query)
        for a, (r, _), h in zip(product.answers, product_lab, cut, strict=True)
        if rank1(r) != rank1(h)
    ]
    depths = np.asarray([d for _, d in product_lab])
    return {
        "queries": len(product.answers),
        "identities": len(set(labels)),
        "k": k,
        "top_k": product.top_k,
        "figures": figures,
        "difference_product_minus_harness": differences,
        "rank1_disagreements": disagree,
        "queries_without_a_face": sum(1 for a in product.answers if a.faces == 0),
        "queries_with_several_faces": sum(1 for a in product.answers if a.faces > 1),
        "labelled_depth": {"min": int(depths.min()), "median": float(np.median(depths))},
        "images_ingested": len(product.image_of),
        "duplicate_images": len(product.image_of) - len(set(product.image_of.values())),
        "gallery": product.gallery,
        "job": {key: product.job.get(key) for key in ("id", "status", "progress")},
        "seconds": product.seconds,
    }


def comparison_table(result: dict[str, Any]) -> list[str]:
    """The figures side by side, in percent, mean ± standard error."""
    columns = [
        ("harness_cut", "harness (in-process)"),
        ("product_labelled", "through the API"),
        ("product_all", "API, unlabelled = wrong"),
    ]
    names = list(result["figures"]["harness"])
    head = f"{'':<14}" + "".join(f"{title:>26}" for _, title in columns) + f"{'API - harness':>22}"
    lines = [head]
    for name in names:
        row = f"{name:<14}"
        for column, _ in columns:
            cell = result["figures"][column][name]
            row += f"{100 * cell['mean']:>18.2f} ± {100 * cell['se']:<5.2f}"
        diff = result["difference_product_minus_harness"][name]
        row += f"{100 * diff['mean']:>14.2f} ± {100 * diff['se']:<5.2f}"
        lines.append(row)
    lines.append(
        f"{result['queries']} queries ({result['identities']} identities), top_k "
        f"{result['top_k']}; rank-1 differs on {len(result['rank1_disagreements'])} queries"
    )
    return lines
