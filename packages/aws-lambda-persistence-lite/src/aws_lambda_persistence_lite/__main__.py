"""``python -m aws_lambda_persistence_lite`` and the ``aws-lambda-persistence-lite`` command (see ``_cli``).

Writes new maps (and migrates maps) with the lite package's codec; reads every codec this process can (the full
package's too, where it is installed) and 1.0.0 items.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._cli import main as _main
from ._map import PersistentMap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line tool with the lite package's map class; returns the exit code."""
    return _main(argv, map_class=PersistentMap, prog="aws-lambda-persistence-lite")


if __name__ == "__main__":
    sys.exit(main())
