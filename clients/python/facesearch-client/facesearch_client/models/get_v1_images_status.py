from enum import StrEnum


class GetV1ImagesStatus(StrEnum):
    FAILED = "failed"
    NO_FACE = "no_face"
    PENDING = "pending"
    READY = "ready"

    def __str__(self) -> str:
        return str(self.value)
