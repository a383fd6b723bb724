"""The library's logger, created on first use: importing logging costs a cold start several milliseconds,
and most invocations never log anything."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see _record.py)
if TYPE_CHECKING:
    import logging

NAME = "aws_lambda_persistence"


def logger() -> logging.Logger:
    import logging

    return logging.getLogger(NAME)


def backoff(attempt: int, base: float, cap: float) -> None:
    """Sleep a random time in [0, min(cap, base * 2**attempt)] ("full jitter"), so that containers that just
    collided do not collide again in step."""
    import random
    import time

    time.sleep(random.uniform(0, min(cap, base * 2**attempt)))
