"""A Lambda handler that gets its map: opened once per container, each invocation's changes committed as one write.

``@PersistentMap.handler()`` replaces the pattern every function otherwise copies (a global map, created at the
first invocation of a container, and a ``batch()`` around the handler's body). The map is opened with
``lazy=True`` at the first invocation (importing the handler's module makes no DynamoDB call, and a test can set
the environment first); each invocation runs inside ``batch()``: its changes are committed as one write (none when
it changes nothing) before the response is returned, and discarded if the handler raises, so a retried event
finds the map as it was. Extra arguments are passed through, so other decorators (Powertools'
``@logger.inject_lambda_context``, ``@tracer.capture_lambda_handler``) stack on either side.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from ._map import PersistentMap

M = TypeVar("M", bound="PersistentMap[Any, Any]")
P = ParamSpec("P")
R = TypeVar("R")
#: A handler that takes the map after the event and the context.
Handler = Callable[Concatenate[Any, Any, M, P], R]
#: What Lambda calls: the event and the context (and whatever an outer decorator passes on).
LambdaHandler = Callable[Concatenate[Any, Any, P], R]


def persistent(open_map: Callable[[], M]) -> Callable[[Handler[M, P, R]], LambdaHandler[P, R]]:
    """A decorator giving each invocation of a handler ``open_map()``'s map, opened at the first invocation."""

    def decorate(function: Handler[M, P, R]) -> LambdaHandler[P, R]:
        opened: list[M] = []
        lock = threading.Lock()

        @functools.wraps(function)
        def invoke(event: Any, context: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if not opened:
                with lock:
                    if not opened:
                        opened.append(open_map())
            data = opened[0]
            with data.batch():
                return function(event, context, data, *args, **kwargs)

        return invoke

    return decorate
