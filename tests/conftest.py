"""Shared fixtures.

* ``custody_env``: an isolated environment (config dir, passphrase) for the CLI;
* ``run``: run the real ``custody`` console script in a subprocess;
* ``case``: an initialised case directory with a collector key, as a ``Case``;
* ``cli``/``ok_json``/``one_error_line``: run the CLI in a case with a hang limit,
  read its JSON, check that a failure is one clear line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["report_fixtures"]  # the report tests' shared case

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
PASSPHRASE = "correct horse battery staple"


def vectors_dir() -> Path:
    """../shared/vectors from the project root (skips if absent)."""
    if not VECTORS.is_dir():
        pytest.skip(f"known-answer vectors not found at {VECTORS}")
    return VECTORS


# -- running the CLI in-process --------------------------------------------------------


def _help_width(env: Mapping[str, str]) -> int:
    """The width Click wraps help to when stdout is a pipe (no terminal to ask)."""
    columns = env.get("COLUMNS", "")
    cols = int(columns) if columns.isdigit() and int(columns) > 0 else 80
    return max(min(cols, 80) - 2, 50)


def invoke(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    cwd: Path,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``custody ARGS`` in this process (``click.testing.CliRunner``), in ``cwd``
    with exactly the environment ``env`` (both restored after the call), stdin from
    ``input``; returned as a ``subprocess.CompletedProcess``.  An exception that
    escapes the CLI's own error handling comes back as a traceback on stderr with
    exit code 1, as the interpreter would print it."""
    from click.testing import CliRunner

    from custody_cli.main import cli as custody_group

    argv = [os.fspath(a) for a in args]
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:  # click >= 8.2: stderr is always kept apart
        runner = CliRunner()
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        result = runner.invoke(
            custody_group,
            argv,
            input=input,
            prog_name="custody",
            terminal_width=_help_width(env),
        )
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["custody", *argv], result.exit_code, result.stdout, stderr)


@pytest.fixture
def custody_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    cfg = tmp_path / "config"
    env = {
        "CUSTODY_CONFIG_DIR": str(cfg),
        "CUSTODY_PASSPHRASE": PASSPHRASE,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("CUSTODY_CASE", "CUSTODY_KEY"):
        monkeypatch.delenv(k, raising=False)
    return env


@dataclass
class Run:
    env: dict[str, str]
    cwd: Path

    def __call__(
        self,
        *args: str | os.PathLike[str],
        input: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **self.env, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "custody_cli.main", *map(str, args)],
            cwd=cwd or self.cwd,
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"custody {args} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
            )
        return proc


@pytest.fixture
def run(custody_env: dict[str, str], tmp_path: Path) -> Run:
    return Run(env=dict(custody_env), cwd=tmp_path)


@dataclass
class Case:
    dir: Path
    key: Path
    run: Run

    def __call__(
        self, *args: str | os.PathLike[str], **kw: object
    ) -> subprocess.CompletedProcess[str]:
        return self.run(*args, cwd=self.dir, **kw)  # type: ignore[arg-type]


def make_case(run: Run, root: Path, *, counsel: bool = False) -> Case:
    """Through the CLI: Dana Reyes' collector key ``root/dana.pem`` (made the default
    key), a case ``root/case`` (2026-017) and, with ``counsel``, Lee Okafor's
    counsel key ``root/lee.pem`` (not the default)."""
    key = root / "dana.pem"
    run("key", "new", "--name", "Dana Reyes", "--role", "collector", "--out", key, check=True)
    if counsel:
        run(
            "key",
            "new",
            "--name",
            "Lee Okafor",
            "--role",
            "counsel",
            "--out",
            root / "lee.pem",
            "--no-default",
            check=True,
        )
    d = root / "case"
    run("init", d, "--case-id", "2026-017", "--title", "Payroll server breach", check=True)
    run.env["CUSTODY_KEY"] = str(key)
    return Case(dir=d, key=key, run=run)


def template_case(root: Path, *, counsel: bool = False) -> Case:
    """:func:`make_case` for a module-scoped template (no monkeypatched environment):
    the CLI's configuration kept in ``root/config``."""
    run = Run(
        env={"CUSTODY_CONFIG_DIR": str(root / "config"), "CUSTODY_PASSPHRASE": PASSPHRASE}, cwd=root
    )
    return make_case(run, root, counsel=counsel)


@pytest.fixture
def case(run: Run, tmp_path: Path) -> Case:
    """A case at tmp_path/case with key tmp_path/dana.pem (the default key)."""
    return make_case(run, tmp_path)


def cli(
    case: Case,
    *args: str | os.PathLike[str],
    timeout: float = 60,
    preexec_fn: Callable[[], None] | None = None,
    argv0: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real CLI (or ``argv0``) in the case dir, with a timeout (a hang fails the
    test)."""
    full_env = {**os.environ, **case.run.env, **(env or {})}
    cmd = argv0 or [sys.executable, "-m", "custody_cli.main"]
    try:
        return subprocess.run(
            [*cmd, *map(str, args)],
            cwd=case.dir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec_fn,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"custody {args} did not finish within {timeout}s (hang?)")


def ok_json(case: Case, *args: str | os.PathLike[str], **kw: Any) -> Any:
    proc = cli(case, *args, **kw)
    assert proc.returncode == 0, f"custody {args} exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr: one ``custody: error: ...`` line, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {proc.stderr!r}"
    assert lines[0].startswith("custody: error: "), lines[0]
    return lines[0]
