from enum import StrEnum


class GetV1JobsStatus(StrEnum):
    CANCELLED = "cancelled"
    FAILED = "failed"
    PARTIAL = "partial"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"

    def __str__(self) -> str:
        return str(self.value)
