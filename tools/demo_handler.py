"""The README's example Lambda handler: a counter and a timestamp that survive cold starts.

As in aws-lambda-persistence 1.0.0, the map lives in a global: Lambda keeps globals while a container stays
warm, so only a cold start loads the map from DynamoDB (one GetItem); changes are committed before it returns.
``tools/demo.py`` invokes it in fresh processes to show both. With ``--lite`` on the command line or
``DEMO_LITE=1`` in the environment it uses ``aws_lambda_persistence_lite`` instead of the full package.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any

if "--lite" in sys.argv or os.environ.get("DEMO_LITE") == "1":
    from aws_lambda_persistence_lite import PersistentMap
else:
    from aws_lambda_persistence import PersistentMap

data: PersistentMap[str, Any]  # declared, not assigned: absent from globals() until the first invocation of a container


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    global data  # noqa: PLW0603 - the Lambda cache: globals survive while the container stays warm
    cold = "data" not in globals()
    if cold:
        data = PersistentMap()  # a cold start: load the map from DynamoDB

    previous_run = data.get("last_run")
    with data.batch():  # both changes in one write (without it, each change is committed at once)
        data["last_run"] = datetime.datetime.now(datetime.timezone.utc)
        data.increment("invocations")  # atomic across containers: redone on the fresh value after a conflict

    return {  # JSON-serialisable, as Lambda requires of a handler's result
        "cold": cold,
        "loaded_from": "DynamoDB" if cold else "the Lambda cache",
        "load_calls": data.last_load.calls if cold else 0,
        "previous_run": previous_run.isoformat() if previous_run else None,
        "invocations": data["invocations"],  # as committed
        "version": data.version,  # the stored version this container last wrote
        "commit_calls": data.last_commit.calls,
    }
