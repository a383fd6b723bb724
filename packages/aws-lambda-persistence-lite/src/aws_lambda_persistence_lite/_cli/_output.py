"""How the tool writes what is not a command's result: a progress line on stderr, sizes and counts in words."""

from __future__ import annotations

import time
from typing import Any, Protocol, TextIO


class _Lines(Protocol):
    """Where progress is drawn: the context's stderr, and whether a progress line is open on it."""

    err: TextIO
    line_open: bool


class Progress:
    """One self-overwriting stderr line. Drawn at most 10 times a second, and (unless --progress) only on a
    terminal and only once an operation has lasted half a second, so short commands print nothing extra."""

    def __init__(self, ctx: _Lines, label: str, forced: bool | None, unit: str | None) -> None:
        self.ctx, self.stream, self.label, self.unit = ctx, ctx.err, label, unit
        self.enabled = forced if forced is not None else _isatty(ctx.err)
        self.delay = 0.0 if forced else 0.5
        self.start = time.monotonic()
        self.last = 0.0
        self.width = 0
        self.items = self.bytes = 0
        self.total: int | None = None

    def update(self, items: int = 0, nbytes: int = 0, *, total: int | None = None) -> None:
        self.items += items
        self.bytes += nbytes
        if total is not None:
            self.total = total
        now = time.monotonic()
        if self.enabled and now - self.start >= self.delay and now - self.last >= 0.1:
            self.last = now
            self._draw()

    def done(self) -> None:
        if self.width or (self.enabled and self.delay == 0):
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self.ctx.line_open = False

    def _draw(self) -> None:
        line = f"{self.label}: {human(self.bytes)}"
        if self.unit is not None:
            done = (
                count(self.items, self.unit) if self.total is None else f"{self.items}/{count(self.total, self.unit)}"
            )
            line = f"{self.label}: {done}, {human(self.bytes)}"
        self.stream.write(("\r" if self.ctx.line_open else "") + line.ljust(self.width))
        self.stream.flush()
        self.ctx.line_open = True
        self.width = max(self.width, len(line))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def count(number: float, noun: str, plural: str = "") -> str:
    """``number`` and ``noun`` in the right number: "1 map", "2 maps", "0.5 read units", "3 entries"."""
    shown = f"{number:g}" if isinstance(number, float) else str(number)
    return f"{shown} {noun if number == 1 else plural or noun + 's'}"


def entries(number: int) -> str:
    return count(number, "entry", "entries")


def first_line(text: str, default: str) -> str:
    """A message's first line that says something (``default`` when none does)."""
    return next((line for line in text.splitlines() if line.strip()), default)
