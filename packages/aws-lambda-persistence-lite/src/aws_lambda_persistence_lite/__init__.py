"""aws-lambda-persistence-lite: a dict for AWS Lambda functions that survives cold starts.

Zero dependencies beyond the boto3 every Lambda Python runtime ships: maps are stored as pickles read
back through an allow-list. The full package, ``aws_lambda_persistence``, is the same engine with the
msgpack + zstandard codec. Stored format: FORMAT.md beside this file.
"""

from ._codec import CODECS
from ._config import RESERVED_WORDS, Settings
from ._errors import (
    ConfigurationError,
    ConflictError,
    CorruptDataError,
    MissingAWSIAMPermissions,
    MixOfConfigAndMapArgsPassed,
    PersistenceError,
    StoredDataError,
    UnsafeDataError,
    UnsupportedFormatError,
    UnsupportedValueError,
)
from ._head import FORMAT as FORMAT_VERSION
from ._iam import policy
from ._map import PersistentMap
from ._meter import Usage

__version__ = "2.0.0"

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
