from enum import StrEnum


class GetV1JobsJobIdItemsStatus(StrEnum):
    FAILED = "failed"
    PENDING = "pending"
    SKIPPED = "skipped"
    SUCCEEDED = "succeeded"

    def __str__(self) -> str:
        return str(self.value)
