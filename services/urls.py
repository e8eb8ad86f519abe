"""Every link the service hands out, built in one place.

Links are paths relative to the API's base URL, in API answers and webhook payloads alike:
the same resource has the same link wherever it is mentioned.
"""

from __future__ import annotations


def job_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def image_url(image_id: int) -> str:
    """The image's bytes."""
    return f"/v1/images/{image_id}/content"


def search_url(search_id: str) -> str:
    return f"/v1/searches/{search_id}"


def search_query_url(search_id: str) -> str:
    """The query photo's bytes."""
    return f"/v1/searches/{search_id}/query"


def webhook_url(webhook_id: str) -> str:
    return f"/v1/webhooks/{webhook_id}"


def webhook_deliveries_url(webhook_id: str) -> str:
    return f"/v1/webhooks/{webhook_id}/deliveries"


def gallery_url(gallery_id: int) -> str:
    return f"/v1/galleries/{gallery_id}"
