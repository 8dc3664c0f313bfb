"""The handler benchmark runs end to end on tiny sizes (no timing is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_handler() -> ModuleType:
    if str(ROOT) not in sys.path:  # bench/ is a top-level package of the checkout, not installed
        sys.path.insert(0, str(ROOT))
    from bench import handler

    return handler


def test_quick_handler_benchmark_produces_numbers(bench_handler: ModuleType) -> None:
    section = bench_handler.run(quick=True, records=300, naive_records=60, repeats=1, signed=False)

    metrics = section.metrics
    assert metrics["cpu_rate"] > 0
    assert metrics["wall_rate"] > 0
    assert metrics["ratio_cpu"] > 0
    # 300 records fit one batch: one _bulk request, whatever the speed.
    assert metrics["requests_per_1000"] == pytest.approx(1000 / 300)
    assert "| ddbsearch handler | 300 |" in section.markdown()
    assert "core/documents.py:to_document" in metrics["profile_table"]
