from enum import StrEnum


class GetV1JobsKind(StrEnum):
    ARCHIVE = "archive"
    ERASE_GALLERY = "erase_gallery"
    INGEST = "ingest"
    REEMBED = "reembed"
    REINDEX = "reindex"
    SEARCH = "search"

    def __str__(self) -> str:
        return str(self.value)
