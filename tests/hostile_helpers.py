"""Helpers of the tests/test_hostile_*.py modules (issue 15: no hangs, no internal
errors): a deadline for in-process CLI runs, hostile file-system nodes."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType


class Hang(Exception):
    """The CLI did not finish before its deadline."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in this (the main) thread after ``seconds``: an
    in-process CLI run blocked in ``open()`` on a FIFO or reading ``/dev/zero``
    forever is interrupted (PEP 475: a handler that raises ends the system call)
    and the test fails instead of hanging the suite."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds}s (a hang)")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


#: the hostile things a path may name instead of a regular file
NODES = ("dev-zero", "fifo", "link-to-dev-zero", "directory")


def make_node(path: Path, node: str) -> Path:
    """Put ``node`` at ``path`` (``dev-zero`` names /dev/zero itself) and return
    the path to give to custody."""
    if node == "dev-zero":
        return Path("/dev/zero")
    if node == "fifo":
        os.mkfifo(path)
    elif node == "link-to-dev-zero":
        path.symlink_to("/dev/zero")
    elif node == "directory":
        path.mkdir()
    else:
        raise ValueError(node)
    return path
