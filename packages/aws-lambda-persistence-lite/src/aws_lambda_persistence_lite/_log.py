"""The library's logger, and the backoff between attempts that it reports."""

from __future__ import annotations

import logging

NAME = "aws_lambda_persistence"


def logger() -> logging.Logger:
    return logging.getLogger(NAME)


def backoff(attempt: int, base: float, cap: float) -> None:
    """Sleep a random time in [0, min(cap, base * 2**attempt)] ("full jitter"), so that containers that just
    collided do not collide again in step."""
    import random
    import time

    time.sleep(random.uniform(0, min(cap, base * 2**attempt)))
