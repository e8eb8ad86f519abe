from enum import StrEnum


class KeyInScope(StrEnum):
    ADMIN = "admin"
    SEARCH = "search"
    WRITE = "write"

    def __str__(self) -> str:
        return str(self.value)
