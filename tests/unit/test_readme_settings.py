"""The README's settings table against the declarations in yadtq_app.settings.

Every declared setting has a row with its variable and its default; no row names a
variable that is not declared. A row may name several variables (``A`` / ``B``) with one
default each (``1`` / ``2``) or one default for all. A default is either the declared
``shown`` text, empty for an empty string, or a literal in backticks that the setting's
parser turns into the declared default.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from yadtq_app.settings import Declaration, declarations

README = Path(__file__).resolve().parents[2] / "README.md"
VARIABLES = re.compile(r"`(YADTQ_[A-Z0-9_]+)`(?: / `YADTQ_[A-Z0-9_]+`)*")


def settings_section(text: str) -> str:
    """The README's ``## Settings`` section, up to the next ``## `` heading."""
    start = text.index("\n## Settings\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def table_rows(section: str) -> list[tuple[str, str]]:
    """``(variables cell, default cell)`` of each row of the section's table, header aside."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert len(lines) > 2 and re.fullmatch(r"\|(-+\|)+", lines[1].replace(" ", "")), "no settings table"
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        rows.append((cells[0], cells[1]))
    return rows


def default_problem(var: str, decl: Declaration, cell: str) -> str | None:
    """Why ``cell`` does not show ``decl``'s default, or None when it does."""
    if decl.shown is not None:
        shown = cell.replace("`", "")  # the README may set a placeholder as code: `<hostname>-<pid>`
        return None if shown == decl.shown else f"{var}: default {cell!r}, declared {decl.shown!r}"
    if decl.default == "":
        return None if cell == "" else f"{var}: default {cell!r}, declared empty"
    literal = re.fullmatch(r"`([^`]+)`", cell)
    if literal is None:
        return f"{var}: default {cell!r} is not a `literal`; declared {decl.default!r}"
    try:
        value = decl.parse(literal.group(1))
    except ValueError as exc:
        return f"{var}: default {cell!r} does not parse ({exc})"
    return None if value == decl.default else f"{var}: default {cell!r} is {value!r}, declared {decl.default!r}"


def table_problems(text: str) -> list[str]:
    """Every way the settings table in ``text`` disagrees with the declarations."""
    declared = {decl.env: decl for decl in declarations().values()}
    problems, seen = [], []
    for variables, default in table_rows(settings_section(text)):
        if not VARIABLES.fullmatch(variables):
            problems.append(f"row {variables!r}: not a list of `YADTQ_*` variables")
            continue
        names = re.findall(r"YADTQ_[A-Z0-9_]+", variables)
        defaults = default.split(" / ")
        if len(defaults) != len(names):
            defaults = [default] * len(names)
        for var, cell in zip(names, defaults):
            seen.append(var)
            if var not in declared:
                problems.append(f"{var}: not a declared setting")
            elif (problem := default_problem(var, declared[var], cell)) is not None:
                problems.append(problem)
    problems += [f"{var}: listed {seen.count(var)} times" for var in sorted(set(seen)) if seen.count(var) > 1]
    problems += [f"{var}: declared, but not in the table" for var in declared if var not in seen]
    return problems


def test_readme_table_matches_the_declarations() -> None:
    assert table_problems(README.read_text()) == []


@pytest.mark.parametrize("old, new, problem", [
    # control cases: the check can fail, in each of the ways it looks for
    ("| `YADTQ_TASK_TOPIC` | `task_queue` |", "| `YADTQ_TASK_TOPIC` | `tasks` |",
     "YADTQ_TASK_TOPIC: default '`tasks`' is 'tasks', declared 'task_queue'"),
    ("| `YADTQ_PARTITIONS` | `8` |", "| `YADTQ_PARTITIONS` | `eight` |",
     "YADTQ_PARTITIONS: default '`eight`' does not parse"),
    ("| `YADTQ_RETRY_BACKOFF` / `YADTQ_RETRY_BACKOFF_MAX` | `1` / `300` |",
     "| `YADTQ_RETRY_BACKOFF` / `YADTQ_RETRY_BACKOFF_MAX` | `1` / `30` |",
     "YADTQ_RETRY_BACKOFF_MAX: default '`30`' is 30.0, declared 300.0"),
    ("| `YADTQ_WORKER_TIMEOUT` | 3 × heartbeat |", "| `YADTQ_WORKER_TIMEOUT` | none |",
     "YADTQ_WORKER_TIMEOUT: default 'none', declared '3 × heartbeat'"),
    ("| `YADTQ_LOG_LEVEL` |", "| `YADTQ_LOG_LEVELS` |", "YADTQ_LOG_LEVEL: declared, but not in the table"),
    ("| `YADTQ_LOG_LEVEL` |", "| `YADTQ_LOG_LEVELS` |", "YADTQ_LOG_LEVELS: not a declared setting"),
    ("| `YADTQ_LOG_LEVEL` |", "| `YADTQ_APP_ID` |", "YADTQ_APP_ID: listed 2 times"),
    ("| `YADTQ_LOG_LEVEL` |", "| `log_level` |", "row '`log_level`': not a list of `YADTQ_*` variables"),
])
def test_the_check_finds_a_wrong_table(old: str, new: str, problem: str) -> None:
    text = README.read_text()
    assert text.count(old) == 1
    problems = table_problems(text.replace(old, new))
    assert any(p.startswith(problem) for p in problems), problems
