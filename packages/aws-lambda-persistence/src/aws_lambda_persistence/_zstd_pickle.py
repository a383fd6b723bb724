"""pickle5+zstd on any Python: the lite package's pickles compressed with Python 3.14's zstd, read (and written) with
zstandard. A module of its own, so that the full codec (``_msgpack``, which shares ``_zstd``) does not load the
pickle codec."""

from __future__ import annotations

from typing import ClassVar

import zstandard
from aws_lambda_persistence_lite._compression import ZSTD_MAX_RATIO
from aws_lambda_persistence_lite._pickle import PickleCodec

from ._zstd import ZSTD_LEVEL, zstd_decompress


class ZstdPickleCodec(PickleCodec):
    """Reads the lite package's pickles compressed with Python 3.14's zstd, on any Python."""

    name: ClassVar[str] = "pickle5+zstd"
    max_ratio: ClassVar[int] = ZSTD_MAX_RATIO

    def compress(self, body: bytes) -> bytes:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(body)

    def _decompress(self, blob: bytes, limit: int) -> bytes:
        return zstd_decompress(blob, limit)
