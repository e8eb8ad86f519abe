"""What a request needs, built once per app: settings, sessions, the store, the Celery app."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.storage import ObjectStore

EXTENSION = "facesearch"


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    celery: Celery

    def close(self) -> None:
        """Release pooled connections (a process that outlives its app, such as a test run)."""
        self.engine.dispose()


def services() -> Services:
    svc: Services = current_app.extensions[EXTENSION]
    return svc


def db() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = services().sessions()
    session: Session = g.db
    return session


def close_db(_: BaseException | None = None) -> None:
    session: Session | None = g.pop("db", None)
    if session is not None:
        session.close()  # rolls back whatever was not committed
