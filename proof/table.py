# -*- test-case-name: tests.test_hostile -*-
"""The one table `make proof` prints: the case, what was done, the figure, pass or fail."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Row:
    case: str
    done: str
    figure: str
    passed: bool


def markdown(rows: Iterable[Row]) -> str:
    lines = ["| case | what was done | figure | result |", "| --- | --- | --- | --- |"]
    for row in rows:
        cells = [row.case, row.done, row.figure, "pass" if row.passed else "**FAIL**"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    """nproc and the CPU model, as /proc/cpuinfo names it."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    system = f"Linux {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} CPUs ({model}), {system}"


def today() -> str:
    return time.strftime("%Y-%m-%d")


def least_squares_slope(points: list[tuple[float, float]]) -> float:
    """The slope of the least-squares line through (x, y) points; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var
