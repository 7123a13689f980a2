"""Result containers and the markdown rendering of bench/RESULTS.md.

Kept apart from the measuring code so the table layout can change without
touching anything that affects the numbers.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Row:
    """One figure: samples per runtime, in `unit` (seconds for times, bytes for sizes)."""

    label: str
    unit: str  # "s" or "bytes"
    samples: dict[str, list[float]] = field(default_factory=dict)
    # A pre-rendered cell overrides median/min/max (e.g. the memory floor's "<= 256 KiB").
    text: dict[str, str] = field(default_factory=dict)

    def add(self, rt: str, value: float) -> None:
        self.samples.setdefault(rt, []).append(value)

    def median(self, rt: str) -> float | None:
        s = self.samples.get(rt)
        return statistics.median(s) if s else None


@dataclass
class Bench:
    """A group of rows measured together; a failure voids the group for that runtime."""

    key: str
    title: str
    rows: list[Row]
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self, label: str) -> Row:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(label)

    def fail(self, rt: str, reason: str) -> None:
        """Keep the first failure only: it is the one that explains the rest."""
        self.errors.setdefault(rt, reason)


def _scale(v: float, unit: str) -> tuple[float, str, int]:
    """Divisor, unit suffix and decimals chosen from one value (the median)."""
    if unit == "s":
        ms = v * 1000
        if ms >= 1000:
            return 1.0, "s", 2
        return 1e-3, "ms", (0 if ms >= 100 else 1 if ms >= 10 else 2)
    if unit == "bytes":
        return (float(1 << 20), "MiB", 1) if v >= 1 << 20 else (1024.0, "KiB", 0)
    return 1.0, "", 2


def fmt_value(v: float, unit: str, like: float | None = None) -> str:
    """v with a unit; `like` picks the scale (so a range shares the median's unit)."""
    div, suffix, dec = _scale(v if like is None else like, unit)
    if unit == "x":
        return f"×{v:.2f}"
    return f"{v / div:.{dec}f} {suffix}"


def fmt_range(v: float, unit: str, like: float) -> str:
    """The number only, in the median's unit, for the compact (min–max) part."""
    return fmt_value(v, unit, like).rsplit(" ", 1)[0]


def cell(row: Row, rt: str, bench: Bench) -> str:
    if rt in bench.errors and row is not bench.rows[0]:
        return "failed (see above)"
    if rt in bench.errors:
        msg = bench.errors[rt].replace("|", "\\|")
        if len(msg) > 140:
            msg = msg[:137] + "..."
        return f"failed: {msg}"
    if rt in row.text:
        return row.text[rt]
    s = row.samples.get(rt)
    if not s:
        return "n/a"
    med = statistics.median(s)
    if len(s) == 1:
        return fmt_value(med, row.unit)
    return (f"{fmt_value(med, row.unit)} ({fmt_range(min(s), row.unit, med)}–"
            f"{fmt_range(max(s), row.unit, med)}, n={len(s)})")


def ratio(row: Row, rt: str, base: str, bench: Bench) -> str:
    if rt in bench.errors or base in bench.errors:
        return "—"
    a, b = row.median(rt), row.median(base)
    if a is None or b is None or b == 0:
        return "—"
    bound = "≤" if row.text.get(rt, "").startswith("≤") else ""
    if row.text.get(base, "").startswith("≤"):
        return "—"  # the base is only an upper bound: no meaningful ratio
    return f"{bound}×{a / b:.2f}"


def table(benches: list[Bench], runtimes: list[str], base: str = "runc") -> str:
    """Markdown table: one row per figure, one column per runtime, then ratios to runc."""
    others = [rt for rt in runtimes if rt != base] if base in runtimes else []
    head = ["figure", *runtimes, *[f"{rt}/{base}" for rt in others]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for b in benches:
        for r in b.rows:
            cells = [f"({b.key}) {r.label}"]
            cells += [cell(r, rt, b) for rt in runtimes]
            cells += [ratio(r, rt, base, b) for rt in others]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
