"""The yadtq command: argument parsing, value parsing, and the error path."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from yadtq_app.cli import build_parser
from yadtq_app.cli_servers import cmd_broker
from yadtq_app.cli_tasks import _parse_value, cmd_status, cmd_submit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, value", [
    ("4", 4),
    ("4.5", 4.5),
    ('"x"', "x"),
    ("hello", "hello"),
    ("[1,2]", [1, 2]),
    ('{"a": null}', {"a": None}),
    ("true", True),
    ("", ""),
    ("4 5", "4 5"),
])
def test_parse_value(text: str, value: object) -> None:
    got = _parse_value(text)
    assert got == value and type(got) is type(value)


def test_parse_submit() -> None:
    args = build_parser().parse_args(["submit", "multiply", "4", "5", "--wait", "--json"])
    assert args.command == "submit" and args.func is cmd_submit
    assert args.task == "multiply" and args.args == ["4", "5"]
    assert args.wait is True and args.json is True
    assert args.timeout == 60.0 and args.task_id is None and args.kwarg is None


def test_parse_submit_options() -> None:
    args = build_parser().parse_args(["submit", "echo", "--kwarg", "a=1", "--kwarg", "b=x", "--task-id", "t1",
                                      "--timeout", "2.5", "--url", "http://h:1"])
    assert args.kwarg == ["a=1", "b=x"] and args.task_id == "t1" and args.timeout == 2.5
    assert args.url == "http://h:1" and args.wait is False and args.json is False and args.args == []


def test_parse_status() -> None:
    args = build_parser().parse_args(["status", "ID"])
    assert args.command == "status" and args.func is cmd_status and args.task_id == "ID"


def test_parse_broker() -> None:
    args = build_parser().parse_args(["broker", "--port", "1234"])
    assert args.func is cmd_broker and args.port == 1234 and args.host == "127.0.0.1"
    assert build_parser().parse_args(["broker"]).port == 9092


@pytest.mark.parametrize("argv", [[], ["nope"], ["broker", "--port", "x"], ["status"]])
def test_parse_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        build_parser().parse_args(argv)
    assert ei.value.code == 2
    assert "usage: yadtq" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_against_closed_port_fails_cleanly() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = subprocess.run([sys.executable, "-m", "yadtq_app.cli", "status", "some-id", "--url", url],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("yadtq:"), proc.stderr
    assert url in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("level,expected", [("warning", "warn"), ("WARNING", "warn"), ("critical", "crit"),
                                            ("info", "info"), ("debug", "debug"), ("error", "error")])
def test_log_levels_are_translated_for_faust(level: str, expected: str) -> None:
    from yadtq_app.cli_servers import _faust_level

    assert _faust_level(level) == expected


def test_unknown_log_level_is_a_clear_error() -> None:
    from yadtq_app.cli_servers import _faust_level
    from yadtq_app.errors import YadtqError

    with pytest.raises(YadtqError, match="YADTQ_LOG_LEVEL"):
        _faust_level("loud")


def _undescribed(parser: argparse.ArgumentParser, prefix: str = "yadtq") -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _undescribed(sub, f"{prefix} {name}")
        elif not action.help and not isinstance(action, argparse._HelpAction):
            missing.append(f"{prefix} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_is_described_in_help() -> None:
    import argparse

    assert _undescribed(build_parser()) == []
    bare = argparse.ArgumentParser()
    bare.add_argument("--x")
    assert _undescribed(bare) == ["yadtq --x"]  # the control case: the walk sees one


def test_parse_wait_and_top() -> None:
    from yadtq_app.cli_watch import cmd_top, cmd_wait

    args = build_parser().parse_args(["wait", "a", "b", "--timeout", "5", "--json"])
    assert args.func is cmd_wait and args.task_ids == ["a", "b"] and args.timeout == 5.0 and args.json is True
    args = build_parser().parse_args(["wait", "a"])
    assert args.timeout == 60.0 and args.json is False
    args = build_parser().parse_args(["top", "--once"])
    assert args.func is cmd_top and args.once is True and args.interval == 2.0
    assert build_parser().parse_args(["top", "--interval", "0.5"]).interval == 0.5


@pytest.mark.parametrize("argv", [["wait"], ["wait", "a", "--timeout", "x"], ["top", "--interval", "x"],
                                  ["top", "ID"]])
def test_wait_and_top_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        build_parser().parse_args(argv)
    assert ei.value.code == 2 and "usage: yadtq" in capsys.readouterr().err


def _subcommands() -> list[str]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    names = _subcommands()
    assert {"wait", "top", "workers", "status", "submit"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as ei:
            build_parser().parse_args([name, "--help"])
        out = capsys.readouterr().out
        assert ei.value.code == 0 and out.startswith(f"usage: yadtq {name}"), (name, out)


@pytest.mark.parametrize("argv", [["top", "--once"], ["wait", "some-id"], ["workers"]])
def test_watch_commands_against_closed_port_fail_cleanly(argv: list[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = subprocess.run([sys.executable, "-m", "yadtq_app.cli", *argv, "--url", url],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("yadtq:") and url in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
