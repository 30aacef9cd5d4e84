"""Issue 18's throughput ratios, from one comparison's figures: yadtq through Kafka ÷ the
bare-Faust floor with as many workers on the same broker, and bulk HTTP ÷ the Kafka path.

Rows are matched by name (``bench/compare.py`` names them): "yadtq {B}{N}w Kafka" with
"Faust floor {B}{N}w", and "yadtq {B}{N}w HTTP bulk" with "yadtq {B}{N}w Kafka", where
{B} is "" (embedded broker) or "AK " (Apache Kafka). Each ratio is shown median ÷ median,
and run by run (both rows have one value per run, measured in the same run) as min–max.
"""

from __future__ import annotations

import re
from typing import Optional

from bench.report import Figure, Results

__all__ = ["FLOOR_METHOD", "THROUGHPUT", "floor_label", "render_ratios"]

THROUGHPUT = "throughput (tasks/s)"
#: What issue 18 asks of each ratio.
TARGET = 0.8
_KAFKA_ROW = re.compile(r"^yadtq (?P<prefix>(?:AK )?)(?P<n>\d+)w Kafka$")

FLOOR_METHOD = """\
- **Faust floor**: `bench/floor_target.py`, N bare Faust workers (`bench/floor_app.py`: one
  agent decodes the task, adds, writes one status row to a RocksDB table; nothing else) in
  one group on a fresh broker of the same kind, with the transport, session and heartbeat of
  yadtq's profile for that broker; the same producer writes the same records as yadtq's
  Kafka path; tasks/s = tasks ÷ (first write → last row seen in the table's changelog, each
  checked), measured once every worker holds partitions. On Apache Kafka also its round
  trips: a task written (`send_and_wait`), then its row read from the changelog, one at a
  time (the bare worker's own way to hand a result back; the client's held fetch answers
  when the row is written). "Kafka ÷ floor" and "bulk ÷ Kafka"
  below the table: issue 18 asks ≥ {target:.1f} of both.
"""


def floor_label(prefix: str, n_workers: int) -> str:
    """The floor's row name: ``prefix`` is the yadtq rows' broker label ("" or "AK ")."""
    return f"Faust floor {prefix}{n_workers}w"


def _per_run(num: Figure, den: Figure) -> str:
    if len(num.values) != len(den.values) or not all(den.values):
        return ""
    ratios = [a / b for a, b in zip(num.values, den.values)]
    return f"{min(ratios):.2f}–{max(ratios):.2f}"


def _pairs(results: Results) -> list[tuple[Figure, Figure]]:
    """(numerator, denominator) of every ratio the figures allow, in table order."""
    pairs = []
    for fig in results.ordered():
        m = _KAFKA_ROW.match(fig.system) if fig.figure == THROUGHPUT else None
        if m is None:
            continue
        prefix, n = m["prefix"], int(m["n"])
        floor = results.get(THROUGHPUT, floor_label(prefix, n))
        if floor is not None:
            pairs.append((fig, floor))
        bulk = results.get(THROUGHPUT, f"yadtq {prefix}{n}w HTTP bulk")
        if bulk is not None:
            pairs.append((bulk, fig))
    return pairs


def render_ratios(results: Results) -> Optional[str]:
    """A Markdown table of the ratios, or ``None`` when no pair of rows was measured."""
    pairs = [(a, b) for a, b in _pairs(results) if b.median]
    if not pairs:
        return None
    head = ["throughput ratio", "median ÷ median", "per run", f"≥ {TARGET:.1f}"]
    rows = [head, ["---"] * len(head)]
    for num, den in pairs:
        ratio = num.median / den.median
        rows.append([f"{num.system} ÷ {den.system}", f"{ratio:.2f}", _per_run(num, den),
                     "yes" if ratio >= TARGET else "no"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("| " + " | ".join(("-" * widths[i] if c == "---" else c.ljust(widths[i]))
                                       for i, c in enumerate(r)) + " |" for r in rows)
