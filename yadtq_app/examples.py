"""The example tasks every worker loads by default (``YADTQ_TASK_MODULES``)."""

from __future__ import annotations

import asyncio
from typing import Any

from .registry import task

__all__ = ["add", "subtract", "multiply", "divide", "sleep", "echo"]


@task
def add(a: float, b: float) -> float:
    """a + b"""
    return a + b


@task
def subtract(a: float, b: float) -> float:
    """a - b"""
    return a - b


@task
def multiply(a: float, b: float) -> float:
    """a * b"""
    return a * b


@task
def divide(a: float, b: float) -> float:
    """a / b; dividing by zero fails the task with ZeroDivisionError."""
    return a / b


@task
async def sleep(seconds: float) -> float:
    """Wait ``seconds`` without blocking the worker, then return them."""
    await asyncio.sleep(seconds)
    return seconds


@task
def echo(value: Any) -> Any:
    """Return ``value`` unchanged."""
    return value
