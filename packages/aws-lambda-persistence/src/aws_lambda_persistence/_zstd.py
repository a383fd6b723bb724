"""zstandard, bounded, for any Python: the full codec's compression, and the lite package's pickles compressed with
Python 3.14's zstd (pickle5+zstd), which this reads on every Python."""

from __future__ import annotations

from typing import ClassVar

import zstandard
from aws_lambda_persistence_lite._compression import ZSTD_MAX_RATIO
from aws_lambda_persistence_lite._errors import CorruptDataError
from aws_lambda_persistence_lite._pickle import PickleCodec

ZSTD_LEVEL = 3
#: Bytes asked of the zstd reader at once: it allocates what it is asked for, so that memory follows what a frame
#: really holds rather than what its head claims.
_READ_CHUNK = 4 << 20


def zstd_decompress(blob: bytes, limit: int) -> bytes:
    """Decompress a zstd frame to at most ``limit`` bytes, whatever the frame header claims."""
    declared = zstandard.frame_content_size(blob)
    if declared not in (-1, limit):
        raise CorruptDataError(f"zstd frame declares {declared} bytes, the head says {limit}")
    with zstandard.ZstdDecompressor().stream_reader(blob) as reader:
        parts, size = [], 0
        while size <= limit:
            part = reader.read(min(limit + 1 - size, _READ_CHUNK))
            if not part:
                break
            parts.append(part)
            size += len(part)
    return b"".join(parts)


class ZstdPickleCodec(PickleCodec):
    """Reads the lite package's pickles compressed with Python 3.14's zstd, on any Python."""

    name: ClassVar[str] = "pickle5+zstd"
    max_ratio: ClassVar[int] = ZSTD_MAX_RATIO

    def compress(self, body: bytes) -> bytes:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(body)

    def _decompress(self, blob: bytes, limit: int) -> bytes:
        return zstd_decompress(blob, limit)
