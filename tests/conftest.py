import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a docker test may not be skipped: a skip becomes a failure."""
    report = yield
    if (report.skipped and item.get_closest_marker("docker") is not None
            and os.environ.get("CI", "").lower() in ("1", "true", "yes")):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"CI=true: docker test may not be skipped ({reason})"
    return report
