"""Demo: a Lambda function's PersistentMap survives cold starts; warm invocations cost no read.

It runs the README's handler (tools/demo_handler.py) in three fresh Python processes, each one a simulated
Lambda container: the first is invoked twice, the second three times, the third once. The first invocation
of each container is a cold start that loads the map from DynamoDB; the others find it in the Lambda cache
(a global). Every invocation increments a counter, so the last one must see 6.

By default DynamoDB is moto's server, started in this process on 127.0.0.1 (no other network). With
``--endpoint URL`` or AWS_ENDPOINT_URL_DYNAMODB set (e.g. DynamoDB Local, or ``tools/dev.py local``), or
``--real-aws``, that DynamoDB is used instead, with the ambient credentials and region (for an endpoint that is not
AWS's, dummy ones where none are set), the table PERSISTENCE_TABLE_NAME (default AWSLambdaPersistence, created if
missing) and a fresh key ``demo-<random>`` that is deleted at the end.

    python tools/demo.py [--lite] [--endpoint URL | --real-aws]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent))
from tools.servers import LOCAL_ENVIRONMENT, moto_server  # noqa: E402  (needs the repository root on sys.path first)

CONTAINERS = (2, 3, 1)  # invocations per simulated container (cold start)

# One simulated container: a fresh interpreter imports the handler and invokes it n times.
CONTAINER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from demo_handler import lambda_handler
for _ in range(int(sys.argv[2])):
    print(json.dumps(lambda_handler({}, None)), flush=True)
"""


def run_container(number: int, invocations: int, env: dict[str, str]) -> list[dict[str, Any]]:
    """Start a fresh process (a cold start) and invoke the handler ``invocations`` times in it."""
    print(f"container {number}: a new process, invoked {'once' if invocations == 1 else f'{invocations} times'}")
    proc = subprocess.run(
        [sys.executable, "-c", CONTAINER, str(TOOLS), str(invocations)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode:
        sys.exit(f"demo failed: container {number} exited with code {proc.returncode}:\n{proc.stderr}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def show(n: int, r: dict[str, Any]) -> None:
    """Print one invocation's result on one line."""

    def calls(count: int) -> str:
        return f"{count} DynamoDB call{'' if count == 1 else 's'}"

    last_run = datetime.fromisoformat(r["previous_run"]).strftime("%H:%M:%S.%f")[:-3] if r["previous_run"] else "never"
    created = (  # last_commit counts item calls only: table creation and its wait are not part of a write's cost
        ", plus CreateTable and DescribeTable: the table did not exist, so the first PutItem failed and the write "
        "created it"
        if r["version"] == 1 and r["commit_calls"] > 1
        else ""
    )
    print(
        f"  invocation {n}: {'cold' if r['cold'] else 'warm'}, map from {r['loaded_from']} ({calls(r['load_calls'])}); "
        f"last run {last_run}, invocations={r['invocations']}; committed version {r['version']} "
        f"({calls(r['commit_calls'])}{created})"
    )


def simulate(env: dict[str, str]) -> None:
    """Run the containers one after the other, show every invocation, and check the counter reached 6."""
    results: list[dict[str, Any]] = []
    for number, invocations in enumerate(CONTAINERS, 1):
        for r in run_container(number, invocations, env):
            results.append(r)
            show(len(results), r)
    expected = sum(CONTAINERS)
    counter = results[-1]["invocations"] if results else None
    colds = sum(r["cold"] for r in results)
    if counter != expected or colds != len(CONTAINERS) or len(results) != expected:
        sys.exit(
            f"demo failed: expected the counter to reach {expected} over {expected} invocations with "
            f"{len(CONTAINERS)} cold starts; got counter {counter} over {len(results)} with {colds}"
        )
    print(f"ok: the counter reached {counter} over {colds} cold starts and {expected - colds} warm invocations")


def delete_map(env: dict[str, str]) -> None:
    """Remove the demo's map from a real table (it is small, so it is one inline item)."""
    import boto3
    from aws_lambda_persistence_lite import Settings

    settings = Settings.resolve({}, env)
    try:
        client = boto3.session.Session().client("dynamodb", endpoint_url=env.get("AWS_ENDPOINT_URL_DYNAMODB"))
        client.delete_item(TableName=settings.table_name, Key={settings.key_field_name: {"S": settings.table_key}})
    except Exception as exc:
        print(f"warning: could not delete the demo's item {settings.table_key!r}: {exc}", file=sys.stderr)


def local_defaults(endpoint: str) -> dict[str, str]:
    """Dummy credentials and a region for an endpoint that is not AWS's, for whichever of the two boto3 finds none
    of (environment, profile; AWS_REGION too): a local server needs some, and checks none. Never for AWS, and never
    replacing what the user set. They also apply to this process, which deletes the demo's map at the end."""
    import boto3

    host = urllib.parse.urlsplit(endpoint).hostname or ""
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws")):
        return {}
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # (no instance role to wait for when looking)
    session = boto3.session.Session()
    added: dict[str, str] = {}
    supplied = []
    if session.get_credentials() is None:
        added.update({name: LOCAL_ENVIRONMENT[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        supplied.append("credentials")
    if not (session.region_name or os.environ.get("AWS_REGION")):
        added.update({name: LOCAL_ENVIRONMENT[name] for name in ("AWS_REGION", "AWS_DEFAULT_REGION")})
        supplied.append(f"region {added['AWS_REGION']}")
    if supplied:
        print(f"{endpoint} is not AWS and none were set: using dummy {' and '.join(supplied)}")
    os.environ.update(added)
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lite", action="store_true", help="use aws_lambda_persistence_lite")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--endpoint", metavar="URL", help="a DynamoDB endpoint to use instead of moto")
    target.add_argument("--real-aws", action="store_true", help="use real AWS DynamoDB instead of moto")
    args = parser.parse_args()
    if not args.lite and importlib.util.find_spec("aws_lambda_persistence") is None:
        sys.exit("aws_lambda_persistence (the full package) is not installed: install it, or run with --lite")

    env = dict(os.environ, AWS_LAMBDA_FUNCTION_NAME="demo-function", DEMO_LITE="1" if args.lite else "0")
    env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    print(f"package: {'aws_lambda_persistence_lite' if args.lite else 'aws_lambda_persistence'}")
    endpoint = args.endpoint or (None if args.real_aws else os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))

    if not (endpoint or args.real_aws):
        with moto_server() as url:
            print(f"DynamoDB: moto server at {url}")
            for name in [k for k in env if k.startswith("PERSISTENCE_")] + ["AWS_PROFILE", "AWS_SESSION_TOKEN"]:
                env.pop(name, None)  # the same run everywhere: default settings, dummy credentials
            env.update(LOCAL_ENVIRONMENT, AWS_LAMBDA_FUNCTION_NAME=env["AWS_LAMBDA_FUNCTION_NAME"])  # (the demo's)
            env.update(AWS_ENDPOINT_URL_DYNAMODB=url, AWS_EC2_METADATA_DISABLED="true")
            simulate(env)
        return

    if endpoint:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        env.update(local_defaults(endpoint))
    env["PERSISTENCE_TABLE_KEY"] = f"demo-{secrets.token_hex(4)}"  # never touch a real function's map
    table = env.get("PERSISTENCE_TABLE_NAME", "AWSLambdaPersistence")
    print(f"DynamoDB: {endpoint or 'AWS'}, table {table}, key {env['PERSISTENCE_TABLE_KEY']}")
    try:
        simulate(env)
    finally:
        delete_map(env)


if __name__ == "__main__":
    main()
