"""``python -m aws_lambda_persistence`` and the ``aws-lambda-persistence`` command (see the lite package's ``_cli``).

Uses this package's map class, so it reads maps written by either package (and 1.0.0) and writes msgpack+zstd.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from aws_lambda_persistence_lite._cli import main as _main

from . import PersistentMap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line tool with the full package's map class; returns the exit code."""
    return _main(argv, map_class=PersistentMap, prog="aws-lambda-persistence")


if __name__ == "__main__":
    sys.exit(main())
