"""Each package's logger, and the backoff between attempts that it reports.

A map logs under the name of the package its class comes from (``aws_lambda_persistence`` for the full package's
maps, ``aws_lambda_persistence_lite`` for the lite one's); each package adds a NullHandler to its logger, so that
nothing is printed unless the function configures logging (Powertools' Logger, or logging.basicConfig). Debug
lines: one per load or refresh and per commit (what it cost), one per attempt that met another writer.
"""

from __future__ import annotations

import logging
import random
import time

#: The lite package's logger: what tools and maps of no known package log to.
LITE = "aws_lambda_persistence_lite"


def package_logger(kind: type) -> logging.Logger:
    """The logger of the package ``kind`` (a map class) is published in."""
    return logging.getLogger(kind.__module__.partition(".")[0])


def backoff(attempt: int, base: float, cap: float) -> float:
    """Sleep a random time in [0, min(cap, base * 2**attempt)] ("full jitter"), so that containers that just
    collided do not collide again in step; return it."""
    pause = random.uniform(0, min(cap, base * 2**attempt))
    time.sleep(pause)
    return pause
