"""Results of one benchmark and their Markdown rendering."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Target:
    name: str
    measured: str
    goal: str
    met: bool | None  # None: not measured
    verdict: str = ""  # overrides the met/missed wording (e.g. "reported")


@dataclass
class Section:
    name: str
    title: str
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def markdown(self, level: int = 3) -> str:
        parts = [f"{'#' * level} {self.title}", ""]
        for table in self.tables:
            parts += [table, ""]
        parts += [f"- {note}" for note in self.notes]
        if self.notes:
            parts.append("")
        parts.append(f"_Benchmark duration: {self.seconds:.1f} s._")
        return "\n".join(parts) + "\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` holds one of l/r per column (default: first l, rest r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def targets_table(sections: Sequence[Section]) -> str:
    rows = [
        (t.name, t.measured, t.goal, t.verdict or verdict(t.met))
        for s in sections
        for t in s.targets
    ]
    return table(("Target", "Measured", "Goal", "Verdict"), rows, "lrrl")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    cores = os.cpu_count()
    return (
        f"{cores} cores ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]} ({platform.python_implementation()})"
    )
