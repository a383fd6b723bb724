"""What reading a stored body costs, per MB decompressed: honest maps beside hostile bodies built to cost most.

Why: FORMAT.md bounds every read ("Reading stored bytes is bounded"): 2 s of CPU and 256 MB beyond the map itself
for a body of up to 2 MB decompressed, and beyond that, cost linear in the decompressed size. A body can
decompress to 1,032 (zlib) or 32,768 (zstd) times its stored size, so a few KB stored can be megabytes to decode
whatever the format; what a hostile writer can add is a constant factor over the costliest honest map, never
more. This measures that factor. Each case runs in a fresh interpreter: CPU (process time) of the decode alone,
and its peak resident memory above what it held before (Linux clear_refs), less what the decoded map still
holds afterwards.

    python tools/bench/decoding.py [--sizes 1,8] (MB decompressed)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import ROOT, log, table

#: (codec, shape, honest?, what it is). Bodies are built in the child (see _CHILD) to the size asked for.
CASES = [
    ("pickle", "nones", True, "a list of None (one opcode per value: the most opcodes per byte)"),
    ("pickle", "strs", True, "a list of short distinct strings (each memoized)"),
    ("pickle", "records", True, "a list of small dicts (JSON-like)"),
    ("pickle", "memo", False, "None, memoized, again and again (a memo entry per 2 bytes)"),
    ("pickle", "get", False, "a list holding itself again and again (weighed, then refused)"),
    ("pickle", "deep", False, "lists nested as deep as the body allows"),
    ("1.0.0", "memo", False, "the same memo body as a 1.0.0 item (stored uncompressed: 400 KB at most)"),
    ("msgpack", "nones", True, "a list of nil"),
    ("msgpack", "records", True, "a list of small maps (JSON-like)"),
    ("msgpack", "tuples", True, "a list of empty tuples (an extension value each: a Python call each)"),
    ("msgpack", "sets", True, "a list of sets of 32 small ints (each element hashed)"),
]

_CHILD = r"""
import json, re, sys, time
codec_name, shape, size = sys.argv[1], sys.argv[2], int(sys.argv[3])

def status(field):
    return int(re.search(field + r":\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024

if codec_name == "msgpack":
    from aws_lambda_persistence._msgpack import MsgpackZstdCodec as Codec
else:
    from aws_lambda_persistence_lite._pickle import PickleCodec as Codec
    from aws_lambda_persistence_lite._pickle import loads_restricted
codec = Codec()
if shape == "nones":
    body = codec.join([codec.encode_entry("k", [None] * size)])
elif shape == "strs":
    body = codec.join([codec.encode_entry("k", [f"{i:x}" for i in range(size // 8)])])
elif shape == "records":
    body = codec.join([codec.encode_entry("k", [{"id": i, "ok": True} for i in range(size // 20)])])
elif shape == "tuples":
    body = codec.join([codec.encode_entry("k", [()] * (size // 3))])
elif shape == "sets":
    one = b"\xc7" + bytes([35, 2]) + b"\xdc\x00\x20" + bytes(range(32))
    body = b"\x81\xa1k\xdd" + (size // len(one)).to_bytes(4, "big") + one * (size // len(one))
elif shape == "memo":
    body = b"\x80\x05\x8c\x01k]\x94(" + b"N\x94" * (size // 2) + b"e\x86."
elif shape == "get":
    body = b"\x80\x05\x8c\x01k]\x94(" + b"h\x00" * (size // 2) + b"e\x86."
elif shape == "deep":
    body = b"\x80\x05\x8c\x01k" + b"]" * (size // 2) + b"a" * (size // 2 - 1) + b"\x86."
if codec_name == "1.0.0":
    body = b"\x80\x05}\x8c\x01k]\x94(" + b"N\x94" * (size // 2) + b"es."
blob, raw = codec.compress(bytes(body)), len(body)
del body
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS")
began = time.process_time()
try:
    if codec_name == "1.0.0":
        import zlib
        result = loads_restricted(zlib.decompress(blob))
    else:
        result = codec.decode(blob, raw)
    outcome = "map"
except Exception as exc:
    outcome = type(exc).__name__
cpu = time.process_time() - began
peak, held = status("VmHWM") - base, status("VmRSS") - base
print(json.dumps({"raw": raw, "stored": len(blob), "cpu": cpu, "beyond": peak - held, "outcome": outcome}))
"""


def measure(codec: str, shape: str, size: int) -> dict[str, float | str]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, codec, shape, str(size)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        return {"outcome": f"child failed: {proc.stderr.strip().splitlines()[-1:]}"}
    result: dict[str, float | str] = json.loads(proc.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,8", help="decompressed sizes in MB, comma-separated")
    args = parser.parse_args()
    sizes = [int(float(s) * (1 << 20)) for s in args.sizes.split(",")]
    has_core = subprocess.run([sys.executable, "-c", "import aws_lambda_persistence"], check=False).returncode == 0
    rows = []
    for codec, shape, honest, what in CASES:
        if codec == "msgpack" and not has_core:
            continue
        for size in sizes:
            log(f"decoding: {codec} {shape} {size >> 20} MB")
            r = measure(codec, shape, size)
            if "raw" not in r:
                rows.append([codec, shape, "honest" if honest else "hostile", what, "—", "—", r["outcome"], "—", "—"])
                continue
            raw, cpu = float(r["raw"]), float(r["cpu"])
            rows.append(
                [
                    codec,
                    shape,
                    "honest" if honest else "hostile",
                    what,
                    f"{raw / (1 << 20):.1f} MB",
                    f"{float(r['stored']) / 1024:,.1f} KB",
                    r["outcome"],
                    f"{cpu:.2f} s ({cpu * 1000 / (raw / (1 << 20)):,.0f} ms per MB)",
                    f"{max(0.0, float(r['beyond'])):,.0f} MB",
                ]
            )
    headers = ["codec", "shape", "kind", "what", "decompressed", "stored", "outcome", "CPU", "memory beyond the map"]
    print(table(headers, rows, left=4))


if __name__ == "__main__":
    main()
