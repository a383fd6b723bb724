"""Every error this library raises, and nothing else.

    PersistenceError                       base of everything below
    ├── MixOfConfigAndMapArgsPassed        (also TypeError)  settings and map data mixed in one call (1.0.0 name)
    ├── ConfigurationError                 (also ValueError) a setting is missing or invalid
    ├── MissingAWSIAMPermissions           (also PermissionError) DynamoDB said AccessDenied (1.0.0 name)
    ├── UnsupportedValueError              (also TypeError)  a value the codec cannot store; names the key path
    ├── StoredDataError                    (also ValueError) what is stored cannot be turned back into a map
    │   ├── CorruptDataError               damaged bytes, failed integrity check, missing shards
    │   ├── UnsafeDataError                a pickle that asks for anything outside the allow-list
    │   └── UnsupportedFormatError         written by a newer format or a codec this package lacks
    └── ConflictError                      concurrent writers kept winning until retries ran out

Errors from botocore that are not translated here (throttling after retries, network failures) are raised
unchanged; in every case the map in memory and in DynamoDB is left as it was before the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class PersistenceError(Exception):
    """Base class of every error raised by this library."""


class MixOfConfigAndMapArgsPassed(PersistenceError, TypeError):
    """Raised when one constructor call passes both settings and map data as keyword arguments."""


class ConfigurationError(PersistenceError, ValueError):
    """Raised when a setting is missing or invalid; the message names the setting and how to set it."""


class MissingAWSIAMPermissions(PersistenceError, PermissionError):
    """Raised when DynamoDB denies an action; the message names it and prints the least-privilege policy."""

    def __init__(self, message: str, *, action: str | None = None) -> None:
        super().__init__(message)
        self.action = action


class UnsupportedValueError(PersistenceError, TypeError):
    """Raised before anything is sent when a value cannot be stored faithfully."""

    def __init__(self, message: str, *, path: str = "", type_name: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.type_name = type_name


class StoredDataError(PersistenceError, ValueError):
    """Raised when stored data cannot be read back; never silently replaced by an empty map."""

    def __init__(self, message: str, *, table: str = "", key: str = "") -> None:
        super().__init__(message)
        self.table = table
        self.key = key


def about_map(kind: type[StoredDataError], table: str, key: str, what: str) -> StoredDataError:
    """The one builder of stored-data errors: ``kind`` with the message "the map in table T under key K <what>",
    naming the map (``table`` and ``key``) so that every such error says which map and why."""
    return kind(f"the map in table {table!r} under key {key!r} {what}", table=table, key=key)


class CorruptDataError(StoredDataError):
    """Raised when a stored item is damaged: bad bytes, failed integrity check, or missing shards."""


class UnsafeDataError(StoredDataError):
    """Raised when a stored pickle asks for a global outside the allow-list (it could run code)."""


class UnsupportedFormatError(StoredDataError):
    """Raised when the stored format or codec is one this package cannot decode."""


class ConflictError(PersistenceError):
    """Raised when other writers kept changing the map and every retry lost.

    Afterwards the map in memory equals the newest stored state; nothing of this call was written.
    """


@contextlib.contextmanager
def undecodable(what: str) -> Iterator[None]:
    """Decoding stored bytes: a StoredDataError is already precise; any other error (a decoder's own, a TypeError
    of a constructor given damaged parts, a RecursionError) means the bytes are damaged: CorruptDataError."""
    try:
        yield
    except StoredDataError:
        raise
    except Exception as exc:
        raise CorruptDataError(f"stored {what} does not decode: {type(exc).__name__}: {exc}") from exc
