"""A pytest plugin that writes a session's totals as JSON to the file ``ALP_TEST_SUMMARY`` names.

``tools/dev.py test`` and ``test-more`` run several pytest sessions and print one summary line for all of them; they
read these files rather than pytest's terminal output. Tests are counted as pytest's own summary line counts them
(``pytest_report_teststatus``: the categories passed, failed, skipped, error, xfailed, xpassed), in the process that
reports them all: the only one without pytest-xdist, its controller with it (workers write nothing).
tests/conftest.py registers it; ``pytest -p tests.totals`` too.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

ENV = "ALP_TEST_SUMMARY"


class Totals:
    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config, self.path = config, path
        self.counts: Counter[str] = Counter()
        self.start = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        category = self.config.hook.pytest_report_teststatus(report=report, config=self.config)[0]
        if category and getattr(report, "count_towards_summary", True):
            self.counts[category] += 1

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.counts["error"] += 1
        elif report.skipped:
            self.counts["skipped"] += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        names = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")
        totals: dict[str, float] = {name: self.counts[name] for name in names}
        totals |= {"exitstatus": int(exitstatus), "seconds": round(time.monotonic() - self.start, 1)}
        self.path.write_text(json.dumps(totals) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    """Register Totals when ALP_TEST_SUMMARY names a file, except in pytest-xdist workers."""
    path = os.environ.get(ENV)
    if path and not hasattr(config, "workerinput") and not config.pluginmanager.has_plugin("alp-totals"):
        config.pluginmanager.register(Totals(config, Path(path)), "alp-totals")
