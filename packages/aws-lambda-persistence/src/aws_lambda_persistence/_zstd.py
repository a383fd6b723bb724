"""zstandard, bounded, for any Python: the compression of the full codec (``_msgpack``) and of the lite package's
pickles compressed with Python 3.14's zstd, which ``_zstd_pickle`` reads on every Python."""

from __future__ import annotations

import zstandard
from aws_lambda_persistence_lite._errors import CorruptDataError

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
