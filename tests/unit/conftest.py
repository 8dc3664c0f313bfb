"""tests/unit is for tests without emulators and without child processes.

Two modules here still run child processes (a wheel build with pip; the Terraform
runner against tests/fakes/terraform). They stay where other work expects them,
marked ``integration`` so that ``-m "not integration"`` is honestly the unit set.
"""

from __future__ import annotations

import pytest

RUNS_CHILD_PROCESSES = frozenset({"test_terraform_package.py", "test_terraform_runner.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in RUNS_CHILD_PROCESSES:
            item.add_marker(pytest.mark.integration)
