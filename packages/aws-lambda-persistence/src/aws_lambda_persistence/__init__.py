"""aws-lambda-persistence: a dict for AWS Lambda functions that survives cold starts, stored in DynamoDB.

``data = PersistentMap()`` loads the function's map; every change is committed at once. This package is the
engine of ``aws_lambda_persistence_lite`` with the msgpack + zstandard codec: exact types, compact and fast.
It reads everything the lite package and 1.0.0 wrote. Stored format: FORMAT.md in the lite package. Tools that
work on whole stored maps use the ``admin`` module, as the command line does.
"""

import logging
from typing import ClassVar, TypeVar

import aws_lambda_persistence_lite as _lite
from aws_lambda_persistence_lite import (
    CODECS as CODECS,
)
from aws_lambda_persistence_lite import (
    FORMAT_VERSION as FORMAT_VERSION,
)
from aws_lambda_persistence_lite import (
    RESERVED_WORDS as RESERVED_WORDS,
)
from aws_lambda_persistence_lite import (
    ConfigurationError as ConfigurationError,
)
from aws_lambda_persistence_lite import (
    ConflictError as ConflictError,
)
from aws_lambda_persistence_lite import (
    CorruptDataError as CorruptDataError,
)
from aws_lambda_persistence_lite import (
    MissingAWSIAMPermissions as MissingAWSIAMPermissions,
)
from aws_lambda_persistence_lite import (
    MixOfConfigAndMapArgsPassed as MixOfConfigAndMapArgsPassed,
)
from aws_lambda_persistence_lite import (
    PersistenceError as PersistenceError,
)
from aws_lambda_persistence_lite import PersistentMap as _LitePersistentMap
from aws_lambda_persistence_lite import (
    Settings as Settings,
)
from aws_lambda_persistence_lite import (
    StoredDataError as StoredDataError,
)
from aws_lambda_persistence_lite import (
    UnsafeDataError as UnsafeDataError,
)
from aws_lambda_persistence_lite import (
    UnsupportedFormatError as UnsupportedFormatError,
)
from aws_lambda_persistence_lite import (
    UnsupportedValueError as UnsupportedValueError,
)
from aws_lambda_persistence_lite import (
    Usage as Usage,
)
from aws_lambda_persistence_lite import (
    policy as policy,
)
from aws_lambda_persistence_lite._public import claim

__version__ = _lite.__version__  # the same release: this package pins the lite one exactly

# Silent unless the function configures logging (Python's advice for libraries): see _log for what is logged.
logging.getLogger(__name__).addHandler(logging.NullHandler())

K = TypeVar("K")
V = TypeVar("V")


class PersistentMap(_LitePersistentMap[K, V]):
    __doc__ = _LitePersistentMap.__doc__
    default_codec: ClassVar[str | None] = "msgpack+zstd"


__all__ = _lite.__all__  # (the same names: PersistentMap and __version__ are this package's own)

# The lite package's classes are this package's (the same objects, so an ``except`` written against either catches
# them): a process that imported this package names them after it in tracebacks, repr and pickles (see _public).
claim(__name__, __all__, globals())
