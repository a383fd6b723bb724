#!/usr/bin/env python3
"""Publish the built layers to AWS regions: ``python tools/layers/publish.py --region us-east-1 --region ...``.

For every layer in build/layers/manifest.json and every region, it publishes a new layer version unless the
latest version there already holds the same zip. Lambda reports a version's ``CodeSha256`` as the base64 of the
zip's SHA-256, so the comparison needs no download; re-running after a partial failure, or on a release that did
not change a layer, therefore publishes nothing twice. The ARNs and SHA-256s go into layers/published.json, one
entry per release version, and a markdown table of them is printed for the README.

Credentials come from the environment (in CI: an OIDC-assumed role, see .github/workflows/layers.yml).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "build" / "layers"
DEFAULT_RECORD = ROOT / "layers" / "published.json"
PUBLIC_STATEMENT = "public-get-layer-version"


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class Published:
    layer: str
    region: str
    arn: str
    version: int
    sha256: str
    new: bool  # False: the latest version already held this zip


def code_sha256(hexdigest: str) -> str:
    """Lambda's CodeSha256 for a zip whose SHA-256 is ``hexdigest``."""
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def latest_version(client: Any, name: str) -> dict[str, Any] | None:
    """The newest version of layer ``name`` with its Content (list_layer_versions lists newest first)."""
    versions = client.list_layer_versions(LayerName=name).get("LayerVersions", [])
    if not versions:
        return None
    newest = max(versions, key=lambda v: v["Version"])
    version: dict[str, Any] = client.get_layer_version(LayerName=name, VersionNumber=newest["Version"])
    return version


def make_public(client: Any, name: str, version: int) -> None:
    # A conflict means our statement is already there: the version is public.
    with contextlib.suppress(client.exceptions.ResourceConflictException):
        client.add_layer_version_permission(
            LayerName=name,
            VersionNumber=version,
            StatementId=PUBLIC_STATEMENT,
            Action="lambda:GetLayerVersion",
            Principal="*",
        )


def publish_layer(
    client: Any, region: str, layer: dict[str, Any], zip_bytes: bytes, *, public: bool, dry_run: bool = False
) -> Published:
    expected = code_sha256(layer["sha256"])
    latest = latest_version(client, layer["name"])
    if latest is not None and latest["Content"]["CodeSha256"] == expected:
        result = Published(layer["name"], region, latest["LayerVersionArn"], latest["Version"], layer["sha256"], False)
    elif dry_run:
        return Published(layer["name"], region, "(dry run)", 0, layer["sha256"], True)
    else:
        response = client.publish_layer_version(
            LayerName=layer["name"],
            Description=layer["description"],
            Content={"ZipFile": zip_bytes},
            CompatibleRuntimes=layer["runtimes"],
            CompatibleArchitectures=layer["architectures"],
            LicenseInfo=layer["license"],
        )
        if response["Content"]["CodeSha256"] != expected:
            raise PublishError(f"{layer['name']} in {region}: Lambda stored a different zip than the one built")
        result = Published(
            layer["name"], region, response["LayerVersionArn"], response["Version"], layer["sha256"], True
        )
    if public and not dry_run:
        make_public(client, layer["name"], result.version)
    return result


def load_layers(out: Path) -> tuple[str, list[dict[str, Any]], dict[str, bytes]]:
    """The manifest's layers and their zips, refusing zips that differ from what the manifest recorded."""
    manifest = json.loads((out / "manifest.json").read_text())
    zips = {}
    for layer in manifest["layers"]:
        data = (out / layer["file"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != layer["sha256"]:
            raise PublishError(f"{layer['file']} does not match manifest.json: rebuild and verify first")
        zips[layer["name"]] = data
    return manifest["version"], manifest["layers"], zips


def publish(
    out: Path,
    regions: Iterable[str],
    *,
    public: bool = False,
    dry_run: bool = False,
    client_factory: Callable[[str], Any] | None = None,
) -> tuple[str, list[dict[str, Any]], list[Published]]:
    version, layers, zips = load_layers(out)
    if client_factory is None:
        import boto3

        def client_factory(region: str) -> Any:
            return boto3.client("lambda", region_name=region)

    results = []
    for region in regions:
        client = client_factory(region)
        for layer in layers:
            results.append(publish_layer(client, region, layer, zips[layer["name"]], public=public, dry_run=dry_run))
    return version, layers, results


def record(path: Path, version: str, layers: list[dict[str, Any]], results: list[Published]) -> dict[str, Any]:
    """Merge ``results`` into the versioned table at ``path`` (created if missing) and return it."""
    table: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"schema": 1, "releases": {}}
    release = table["releases"].setdefault(version, {})
    by_name = {layer["name"]: layer for layer in layers}
    for result in results:
        layer = by_name[result.layer]
        entry = release.setdefault(result.layer, {})
        if entry.get("sha256") != result.sha256:  # a rebuilt zip for the same version: its old ARNs are stale
            entry.clear()
        entry.update(
            {
                "file": layer["file"],
                "sha256": result.sha256,
                "architectures": layer["architectures"],
                "runtimes": layer["runtimes"],
            }
        )
        entry.setdefault("regions", {})[result.region] = {"arn": result.arn, "version": result.version}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return table


def markdown(table: dict[str, Any], version: str) -> str:
    lines = [
        f"Layers of aws-lambda-persistence {version}:",
        "",
        "| Layer | Architectures | Region | ARN |",
        "| --- | --- | --- | --- |",
    ]
    for name, entry in sorted(table["releases"].get(version, {}).items()):
        for region, where in sorted(entry["regions"].items()):
            lines.append(f"| {name} | {', '.join(entry['architectures'])} | {region} | `{where['arn']}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--region", action="append", required=True, help="a region to publish to (repeat; or one comma-separated list)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="built layers (default build/layers)")
    parser.add_argument("--record", type=Path, default=DEFAULT_RECORD, help="default layers/published.json")
    parser.add_argument("--public", action="store_true", help="let every AWS account use the layer versions")
    parser.add_argument("--dry-run", action="store_true", help="report what would be published; change nothing")
    args = parser.parse_args(argv)
    regions = [r.strip() for value in args.region for r in value.split(",") if r.strip()]
    try:
        version, layers, results = publish(args.out, regions, public=args.public, dry_run=args.dry_run)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{'published' if r.new else 'unchanged'}  {r.region}  {r.arn}")
    if not args.dry_run:
        print()
        print(markdown(record(args.record, version, layers, results), version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
