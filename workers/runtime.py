"""Per-process resources of a worker: database sessions, the object store, the vector index
and the face pipeline. Each is built once per process, lazily, and reused by every task."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.index import VectorIndex
from core.logging import get_logger
from core.settings import Settings, get_settings
from core.storage import ObjectStore, open_store
from models.db import make_engine, make_session_factory

if TYPE_CHECKING:
    from workers.pipeline import FacePipeline

log = get_logger(__name__)

# Set only by the plumbing benchmark (scripts/bench_plumbing.py): "detect_ms=N,embed_ms=M"
# replaces the face model with a fixed-cost stand-in (workers.pipeline.standin).
STANDIN_ENV = "FACESEARCH_STANDIN_MODEL"


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache(maxsize=1)
def get_session_factory() -> sessionmaker[Session]:
    return make_session_factory(get_engine())


@lru_cache(maxsize=1)
def get_store() -> ObjectStore:
    return open_store(get_settings().storage_url)


@lru_cache(maxsize=1)
def get_index() -> VectorIndex:
    settings = get_settings()
    return VectorIndex(
        settings.milvus_uri,
        token=settings.milvus_token,
        index_type=settings.milvus_index_type,
        hnsw_m=settings.milvus_hnsw_m,
        hnsw_ef_construction=settings.milvus_hnsw_ef_construction,
        search_ef=settings.milvus_search_ef,
    )


@lru_cache(maxsize=1)
def get_pipeline() -> FacePipeline:
    settings = get_settings()
    standin = os.environ.get(STANDIN_ENV)
    if standin:
        # The plumbing benchmark's fixed-cost model (never set in production): the whole
        # product runs as usual around it, without TensorFlow.
        from workers.pipeline.standin import parse_standin, standin_pipeline  # noqa: PLC0415

        detect_ms, embed_ms = parse_standin(standin)
        log.warning(
            "worker: the stand-in model, not a real one", detect_ms=detect_ms, embed_ms=embed_ms
        )
        return standin_pipeline(
            detect_ms=detect_ms,
            embed_ms=embed_ms,
            batch_size=settings.pipeline_batch_size,
            release_memory=settings.pipeline_release_memory,
        )
    pipeline = build_pipeline(settings)
    pipeline.load()
    return pipeline


def build_pipeline(settings: Settings) -> FacePipeline:
    """The product's face pipeline as the settings configure it (not loaded): the recipe's
    options (FACE_MARGIN, FACE_ALIGN, FACE_FLIP, DETECT_MIN_CONFIDENCE, DETECT_SECOND_PASS)
    included. ``facesearch calibrate`` builds the same, so its calibration is of these
    vectors."""
    from workers.pipeline import FacePipeline, SecondPass  # noqa: PLC0415 (TensorFlow later)

    return FacePipeline(
        model_name=settings.model_name,
        weights_dir=settings.model_dir,
        max_faces=settings.max_faces_per_image,
        batch_size=settings.pipeline_batch_size,
        max_detect_side=settings.detect_max_side or None,
        release_memory=settings.pipeline_release_memory,
        margin=settings.face_margin,
        align=settings.face_align,
        flip=settings.face_flip,
        min_confidence=settings.detect_min_confidence,
        second_pass=SecondPass() if settings.detect_second_pass else None,
    )


def reset(*, pipeline: bool = False) -> None:
    """Forget the connections (after a fork, or between tests); the loaded model too if asked,
    which is rarely worth it (loading costs seconds and a GB)."""
    if get_index.cache_info().currsize:
        get_index().close()
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for getter in (get_engine, get_session_factory, get_store, get_index):
        getter.cache_clear()
    if pipeline:
        get_pipeline.cache_clear()
