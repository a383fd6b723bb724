"""Compression, bounded: how far a stored blob may expand, decompressed to no more than its head declares.

Shared by every codec (zlib and the standard library's zstd here; the full package adds zstandard's).
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable

from ._errors import CorruptDataError, StoredDataError
from ._limits import MAX_DECODED_BYTES

#: The most one byte of a blob can decompress to, by the format itself: deflate codes a 258-byte match in 2 bits
#: (zlib level 6 reaches 1,029 on zeros), zstd a 128 KiB RLE block in 4 bytes (level 3 reaches 32,600). A size
#: claim beyond is damage, refused before anything is allocated; no blob that a compressor made is refused.
ZLIB_MAX_RATIO = 1032
ZSTD_MAX_RATIO = 32768


def decompress_bounded(decompress: Callable[[bytes, int], bytes], blob: bytes, raw_size: int, max_ratio: int) -> bytes:
    """Decompress to exactly ``raw_size`` bytes, refusing anything larger (a hostile size claim included): a claim
    must be within ``MAX_DECODED_BYTES``, the function's memory, and ``max_ratio`` (the format's) times the blob's
    size."""
    if not 0 <= raw_size <= MAX_DECODED_BYTES:
        raise CorruptDataError(f"declared decoded size {raw_size} is outside 0..{MAX_DECODED_BYTES}")
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")  # MB, set by Lambda
    if memory.isdigit() and raw_size > int(memory) * 1024 * 1024:
        raise StoredDataError(
            f"the stored map decodes to {raw_size >> 20} MB, more than this function's memory ({memory} MB) can "
            "hold; give the function more memory, or (if the map should be small) check the item"
        )
    if raw_size > max_ratio * len(blob):
        raise CorruptDataError(
            f"declared decoded size {raw_size} is more than a blob of {len(blob)} bytes can decompress to "
            f"({max_ratio} times its size)"
        )
    try:
        body = decompress(blob, raw_size)
    except CorruptDataError:
        raise
    except Exception as exc:
        raise CorruptDataError(f"stored blob does not decompress: {exc}") from exc
    if len(body) != raw_size:
        raise CorruptDataError(f"stored blob decompresses to {len(body)} bytes, the head says {raw_size}")
    return body


def zlib_decompress(blob: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    body = d.decompress(blob, limit + 1)
    if len(body) > limit or not d.eof:
        raise CorruptDataError("stored blob is larger than declared, or truncated")
    return body


@functools.cache
def has_stdlib_zstd() -> bool:
    """Whether this interpreter has the standard library's zstd (Python 3.14+, built with libzstd). Asked once:
    a failed import is not cached by Python, and searching sys.path again cost 0.3 ms per PersistentMap()."""
    try:
        import compression.zstd  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def stdlib_zstd_compress(body: bytes) -> bytes:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]

    return bytes(zstd.compress(body, options={zstd.CompressionParameter.checksum_flag: 1}))


def stdlib_zstd_decompress(blob: bytes, limit: int) -> bytes:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]

    d = zstd.ZstdDecompressor()
    body = bytes(d.decompress(blob, max_length=limit + 1))
    if len(body) > limit or not d.eof:
        raise CorruptDataError("stored blob is larger than declared, or truncated")
    return body
