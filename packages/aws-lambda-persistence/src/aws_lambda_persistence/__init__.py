"""aws-lambda-persistence: a dict for AWS Lambda functions that survives cold starts, stored in DynamoDB.

``data = PersistentMap()`` loads the function's map; every change is committed at once. This package is the
engine of ``aws_lambda_persistence_lite`` with the msgpack + zstandard codec: exact types, compact and fast.
It reads everything the lite package and 1.0.0 wrote. Stored format: FORMAT.md in the lite package. Tools that
work on whole stored maps use the ``admin`` module, as the command line does.
"""

import logging
from typing import ClassVar, TypeVar

from aws_lambda_persistence_lite import (
    CODECS,
    FORMAT_VERSION,
    RESERVED_WORDS,
    ConfigurationError,
    ConflictError,
    CorruptDataError,
    MissingAWSIAMPermissions,
    MixOfConfigAndMapArgsPassed,
    PersistenceError,
    Settings,
    StoredDataError,
    UnsafeDataError,
    UnsupportedFormatError,
    UnsupportedValueError,
    Usage,
    policy,
)
from aws_lambda_persistence_lite import PersistentMap as _LitePersistentMap

__version__ = "2.0.0"

# Silent unless the function configures logging (Python's advice for libraries): see _log for what is logged.
logging.getLogger(__name__).addHandler(logging.NullHandler())

K = TypeVar("K")
V = TypeVar("V")


class PersistentMap(_LitePersistentMap[K, V]):
    __doc__ = _LitePersistentMap.__doc__
    default_codec: ClassVar[str | None] = "msgpack+zstd"


__all__ = [
    "CODECS",
    "FORMAT_VERSION",
    "RESERVED_WORDS",
    "ConfigurationError",
    "ConflictError",
    "CorruptDataError",
    "MissingAWSIAMPermissions",
    "MixOfConfigAndMapArgsPassed",
    "PersistenceError",
    "PersistentMap",
    "Settings",
    "StoredDataError",
    "UnsafeDataError",
    "UnsupportedFormatError",
    "UnsupportedValueError",
    "Usage",
    "__version__",
    "policy",
]
