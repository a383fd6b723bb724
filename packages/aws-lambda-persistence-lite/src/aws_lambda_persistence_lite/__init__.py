"""aws-lambda-persistence-lite: a dict for AWS Lambda functions that survives cold starts.

Zero dependencies beyond the boto3 every Lambda Python runtime ships: maps are stored as pickles read
back through an allow-list. The full package, ``aws_lambda_persistence``, is the same engine with the
msgpack + zstandard codec. Stored format: FORMAT.md beside this file. Tools that work on whole stored maps
(describe, read, rewrite in another codec, list a table's) use the ``admin`` module, as the command line does.
"""

import logging

# Import cost: what a cold start pays is this package's import after boto3's (the function's map talks through a
# boto3 client), measured by tools/bench/layer_import.py and import_time.py. boto3 already imports typing, re,
# hashlib, datetime, decimal, uuid, logging, pickle, base64 and copy, so this package imports them plainly (the
# shims that avoided them, a typing-free NamedTuple, _blake2 and matching classes by name, saved nothing after
# boto3: 5.0 ms without them against 4.4 ms with them, within the noise). Deferred where it measurably pays:
# zoneinfo (1.4 ms after boto3; ``_model``), each codec's module and libraries (msgpack and zstandard, 1.5 ms; the
# first map loads its codec, ``_codec``), the engine's protocols that only some paths need (a first or large write,
# a flush, 1.0.0 items, batch() blocks, the handler decorator: imported where first used, ``_replica``; with the
# pickle codec they took the import after boto3 from 6.4 to 4.4 ms, tests/engine/test_lambda.py keeps them out) and
# boto3 itself (``_client``: the command line's --help and ``policy()`` never pay for it).
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
from ._public import claim

# The one place the version is written: both packages' metadata (hatchling reads this line), the full package's
# exact pin on this one, tools/release.py and the layers take it from here. A literal, so that it also holds where
# this directory is pasted next to a handler, without install metadata.
__version__ = "2.0.0"

# Silent unless the function configures logging (Python's advice for libraries): see _log for what is logged.
logging.getLogger(__name__).addHandler(logging.NullHandler())

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

claim(__name__, __all__, globals())  # tracebacks, repr and pickles name the public module (see _public)
