"""The embedded broker: kombu's filesystem transport, with each message written atomically.

kombu's own ``_put`` creates the message file under its final name, then writes it; a
consumer polling the folder can take the file in between (it moves it away, then reads it)
and read it empty. Celery then stops the worker ("Unrecoverable error: JSONDecodeError"),
which in the default layout stops every worker process with it. Measured: the worker died
this way 2,464 images into an all-LFW ingest on the embedded default, with searches and
index writes polling beside it. Here the file is written under a name no consumer reads
(``.partial`` after the queue's suffix) and renamed into place: a rename within one folder is
atomic, so a consumer sees a whole message or none.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# The broker URL's scheme that selects this transport (core.queue.broker_options).
SCHEME = "facesearch-fs"


class Channel(filesystem.Channel):
    # kombu names the argument "message" in AbstractChannel and "payload" in the filesystem
    # Channel, which this replaces: its name is kept.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Put ``payload`` onto ``queue``: named as kombu names it (consumers take messages
        in name order: milliseconds, then a uuid), visible only once whole."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".partial"  # not "<queue>.msg": no consumer takes it
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
