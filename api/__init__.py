"""The web layer: validates input, stores bytes, writes rows, queues tasks, answers 202.

It never loads TensorFlow and never talks to Milvus on the request path of an upload.
"""

from __future__ import annotations

from apiflask import APIFlask

from api import auth, limits, openapi, path_ids, schemas, security, text, web
from api.context import EXTENSION, Services, close_db
from api.docs import use_local_assets
from api.errors import register_error_handlers
from api.metrics import install as install_metrics
from api.request_log import install as install_request_log
from core.logging import configure_logging
from core.queue import make_celery
from core.settings import Settings, get_settings
from core.storage import open_store
from models.db import make_engine, make_session_factory


def create_app(settings: Settings | None = None) -> APIFlask:
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    app = APIFlask(
        __name__,
        title="facesearch",
        version="1.0",
        spec_path="/openapi.json",
        docs_path="/docs",
    )
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
        VALIDATION_ERROR_STATUS_CODE=422,
        # The docs page's Swagger UI (4.15, from swagger-ui-bundle) renders OpenAPI 3.0 only:
        # given 3.1 it shows nothing but a version error.
        OPENAPI_VERSION="3.0.3",
        # Every error has the project's one body (api.errors): the document says so too.
        HTTP_ERROR_SCHEMA=schemas.ErrorOut,
        VALIDATION_ERROR_SCHEMA=schemas.ErrorOut,
        DESCRIPTION="Reverse face-image search: upload photos to a gallery, search it with a "
        "photo, and get ranked matches for every face. Long operations are jobs: poll "
        "`GET /v1/jobs/{id}`.",
    )
    engine = make_engine(settings.database_url)
    app.extensions[EXTENSION] = Services(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        store=open_store(settings.storage_url),
        celery=make_celery(settings),
    )
    app.teardown_appcontext(close_db)
    install_metrics(app, app.extensions[EXTENSION])
    app.register_blueprint(web.bp)
    install_request_log(app)
    security.install(app, settings)
    auth.install(app)
    path_ids.install(app)  # after the key check: without a key, every route answers 401
    openapi.install(app)
    limits.install(app, settings)  # after auth: it limits per key
    text.install(app)  # after auth: refuses control characters in any text read
    register_error_handlers(app)
    use_local_assets(app)

    from api import browse, health, images, jobs, searches  # noqa: PLC0415 (routes need the app)

    for module in (health, images, jobs, searches, browse):
        app.register_blueprint(module.bp)
    from api import archives, job_control  # noqa: PLC0415 (bulk archive ingest, job control)

    for module in (archives, job_control):
        app.register_blueprint(module.bp)
    from api import galleries, keys, webhooks  # noqa: PLC0415 (tenancy, subscriptions)

    for module in (webhooks, galleries, keys):
        app.register_blueprint(module.bp)
    from api import faces, labels  # noqa: PLC0415 (a face's label; erasing a person)

    for module in (faces, labels):
        app.register_blueprint(module.bp)
    return app
