"""Fast checks of the builder's pure functions: no download, no build."""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("msgpack/__init__.py", "msgpack/__init__.py"),
        ("msgpack/_cmsgpack.cpython-312-x86_64-linux-gnu.so", "msgpack/_cmsgpack.cpython-312-x86_64-linux-gnu.so"),
        ("zstandard/_cffi.cpython-312-x86_64-linux-gnu.so", None),
        ("zstandard/backend_cffi.py", None),
        ("zstandard/__init__.pyi", None),
        ("zstandard-0.25.0.dist-info/RECORD", None),
        ("zstandard-0.25.0.dist-info/licenses/LICENSE", "zstandard-0.25.0.dist-info/licenses/LICENSE"),
        ("zstandard-0.25.0.dist-info/", None),
        ("pkg/__pycache__/x.cpython-312.pyc", None),
        ("pkg/tests/test_x.py", None),
        ("boto3/__init__.py", None),
        ("six.py", None),
        ("python_dateutil-2.9.0.dist-info/METADATA", None),
        ("pkg-1.0.data/purelib/pkg/mod.py", "pkg/mod.py"),
        ("pkg-1.0.data/scripts/tool", None),
    ],
)
def test_kept_path(builder: ModuleType, member: str, expected: str | None) -> None:
    assert builder.kept_path(member) == expected


def test_elf_machine(builder: ModuleType) -> None:
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    header[18:20] = (183).to_bytes(2, "little")
    assert builder.elf_machine(bytes(header)) == 183
    assert builder.elf_machine(b"\x7fELF\x01\x01" + bytes(58)) is None  # 32-bit
    assert builder.elf_machine(b"PK\x03\x04" + bytes(60)) is None


def test_platform_tags_follow_each_runtimes_glibc(builder: ModuleType) -> None:
    arm = builder.ARCHES["arm64"]
    tags = arm.platforms("3.11")  # Amazon Linux 2: glibc 2.26
    assert tags[0] == "manylinux_2_26_aarch64"
    assert "manylinux_2_28_aarch64" not in tags
    assert "manylinux2014_aarch64" in tags
    assert builder.ARCHES["x86_64"].platforms("3.13")[0] == "manylinux_2_34_x86_64"  # Amazon Linux 2023
    assert "manylinux1_x86_64" in builder.ARCHES["x86_64"].platforms("3.10")
