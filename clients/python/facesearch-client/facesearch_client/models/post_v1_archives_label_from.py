from enum import StrEnum


class PostV1ArchivesLabelFrom(StrEnum):
    FILENAME = "filename"
    FOLDER = "folder"
    NONE = "none"

    def __str__(self) -> str:
        return str(self.value)
