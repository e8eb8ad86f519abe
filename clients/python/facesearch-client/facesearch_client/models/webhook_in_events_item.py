from enum import StrEnum


class WebhookInEventsItem(StrEnum):
    JOB_COMPLETED = "job.completed"
    SEARCH_COMPLETED = "search.completed"
    SEARCH_FAILED = "search.failed"

    def __str__(self) -> str:
        return str(self.value)
