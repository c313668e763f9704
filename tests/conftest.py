"""Shared fixtures and helpers (and tests/tampering.py: what an attacker holding the
files does; tests/report_fixtures.py: the report tests' case).

* ``custody_env``: an isolated environment (config dir, passphrase) for the CLI;
  ``custody_cwd``: the same, run from ``tmp_path``;
* ``run``: run the ``custody`` CLI (a :class:`Run`); ``invoke_here``/``ok_here``:
  run it in the test's own environment and working directory;
* ``case``: an initialised case directory with a collector key, as a ``Case``
  (:func:`make_case`, :func:`template_case` for module-scoped templates,
  :func:`new_key`);
* ``cli``/``ok_json``/``one_error_line``: run the CLI in a case, read its JSON,
  check that a failure is one clear line;
* ``tool_digest``/``sha256sum``: digests by coreutils, not the library;
  ``drop_dac_capabilities``/``python_without_dac``: a child that root's file
  permissions bind.

How the CLI runs
    In-process by default: :func:`invoke` calls the Click group
    ``custody_cli.main.cli`` through ``click.testing.CliRunner`` with exactly what a
    ``python -m custody_cli.main`` subprocess would get: ``os.environ`` replaced by
    the given environment and the working directory changed for the call (both
    restored after it), stdin from ``input`` (never a TTY), help wrapped as in a
    pipe.  It returns a ``subprocess.CompletedProcess`` (``returncode``,
    ``stdout``, ``stderr``); an exception that escapes the CLI's own error
    handling comes back as a Python traceback on stderr with exit code 1, as the
    interpreter would print it.  :func:`spawn` runs the real interpreter for tests
    where a process matters (kills and signals, concurrent writers, a
    ``preexec_fn``, a wrapper script, start-up imports): pass ``process=True`` to
    ``Run``/``Case``/``cli`` (``preexec_fn`` or ``argv0`` imply it).

Known-answer vectors
    ``tests/vectors/`` (:data:`VECTORS`) holds copies of the public test vectors
    the tests read, each with its upstream source named in a SOURCE.txt or a
    ``_source`` field, so that a fresh clone runs every test.

Hypothesis
    The profile ``ci`` is loaded unless ``HYPOTHESIS_PROFILE`` names another one:
    no deadline (a loaded 2-core CI machine makes timings meaningless), derandomized
    (the same examples on every run, so a red CI run is reproducible), no example
    database, failing examples printed with their reproduction blob, and
    :data:`CI_EXAMPLES` examples for a test that sets no count of its own (tests
    with an explicit ``max_examples`` keep theirs).  ``HYPOTHESIS_PROFILE=thorough``
    runs 1000 random examples per such test, with the example database.

Parallel runs
    pytest-xdist runs the suite on every core (``-n auto`` in pyproject.toml's
    addopts; ``-n 0`` for one process, e.g. with ``-s`` or ``--pdb``).  Tests
    write only under their own ``tmp_path``/``tmp_path_factory`` directories, which
    are per worker, and module-scoped templates are built once per worker that
    needs them.
"""

from __future__ import annotations

import ctypes
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
from hypothesis import HealthCheck, settings

pytest_plugins = ["report_fixtures"]  # the report tests' shared case

VECTORS = Path(__file__).resolve().parent / "vectors"
PASSPHRASE = "correct horse battery staple"
CLI_MODULE = [sys.executable, "-m", "custody_cli.main"]

CI_EXAMPLES = 50
settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

Args = Sequence[str | os.PathLike[str]]


# -- running the CLI ----------------------------------------------------------------


def _help_width(env: Mapping[str, str]) -> int:
    """The width Click wraps help to when stdout is a pipe (no terminal to ask)."""
    columns = env.get("COLUMNS", "")
    cols = int(columns) if columns.isdigit() and int(columns) > 0 else 80
    return max(min(cols, 80) - 2, 50)


def invoke(
    args: Args,
    *,
    env: Mapping[str, str],
    cwd: Path,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``custody ARGS`` in this process, in ``cwd`` with exactly the environment
    ``env``; see the module docstring."""
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
        # what the interpreter prints for an uncaught exception (exit code 1)
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["custody", *argv], result.exit_code, result.stdout, stderr)


def spawn(
    args: Args,
    *,
    env: Mapping[str, str],
    cwd: Path,
    input: str | None = None,
    timeout: float = 300,
    preexec_fn: Callable[[], None] | None = None,
    argv0: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``custody ARGS`` as a real process (``python -m custody_cli.main``, or
    ``argv0``), with a timeout: a hang fails the test."""
    try:
        return subprocess.run(
            [*(argv0 or CLI_MODULE), *map(os.fspath, args)],
            cwd=cwd,
            env=dict(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec_fn,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"custody {list(args)} did not finish within {timeout}s (hang?)")


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


@pytest.fixture
def custody_cwd(
    custody_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """:func:`custody_env`, and the working directory ``tmp_path`` (no case there
    or above it), for :func:`invoke_here`."""
    monkeypatch.chdir(tmp_path)
    return custody_env


def invoke_here(
    *args: str | os.PathLike[str], input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`invoke` with the test's own environment and working directory (as set
    with monkeypatch, e.g. by :func:`custody_cwd`)."""
    return invoke(args, env=dict(os.environ), cwd=Path.cwd(), input=input)


def ok_here(
    *args: str | os.PathLike[str], input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`invoke_here`, which must exit 0."""
    proc = invoke_here(*args, input=input)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@dataclass
class Run:
    """The CLI with ``env`` on top of the test's environment, in ``cwd`` by default."""

    env: dict[str, str]
    cwd: Path

    def __call__(
        self,
        *args: str | os.PathLike[str],
        input: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
        process: bool = False,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **self.env, **(env or {})}
        where = cwd or self.cwd
        if process:
            proc = spawn(args, env=full_env, cwd=where, input=input, timeout=timeout)
        else:
            proc = invoke(args, env=full_env, cwd=where, input=input)
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
        self, *args: str | os.PathLike[str], **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return self.run(*args, cwd=self.dir, **kw)

    @property
    def env(self) -> dict[str, str]:
        """The environment the CLI gets in this case (the test's, plus the run's)."""
        return {**os.environ, **self.run.env}


def new_key(
    runner: Callable[..., subprocess.CompletedProcess[str]],
    out: Path,
    name: str,
    role: str,
    *,
    default: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``custody key new`` through ``runner`` (a Run, a Case, ReportCase.run), which
    must succeed: ``out`` and its .pub for NAME as ROLE, remembered as the default
    signing key unless ``default`` is false (``--no-default``)."""
    flags = [] if default else ["--no-default"]
    return runner("key", "new", "--name", name, "--role", role, "--out", out, *flags, check=True)


def make_case(run: Run, root: Path, *, counsel: bool = False) -> Case:
    """Through the CLI: Dana Reyes' collector key ``root/dana.pem`` (made the default
    key), a case ``root/case`` (2026-017) and, with ``counsel``, Lee Okafor's
    counsel key ``root/lee.pem`` (not the default)."""
    key = root / "dana.pem"
    new_key(run, key, "Dana Reyes", "collector")
    if counsel:
        new_key(run, root / "lee.pem", "Lee Okafor", "counsel", default=False)
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
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The CLI (or ``argv0``) in the case dir.  In-process unless ``process``,
    ``preexec_fn`` or ``argv0`` asks for a real process, which gets ``timeout``
    seconds (a hang fails the test)."""
    full_env = {**case.env, **(env or {})}
    if process or preexec_fn is not None or argv0 is not None:
        return spawn(
            args, env=full_env, cwd=case.dir, timeout=timeout, preexec_fn=preexec_fn, argv0=argv0
        )
    return invoke(args, env=full_env, cwd=case.dir)


def ok_json(target: Case | Run, *args: str | os.PathLike[str], **kw: Any) -> Any:
    """Run the CLI (``cli`` for a case, else ``target`` itself), require exit 0 and
    return its stdout parsed as JSON."""
    proc = cli(target, *args, **kw) if isinstance(target, Case) else target(*args, **kw)
    assert proc.returncode == 0, f"custody {args} exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def drop_dac_capabilities() -> None:
    """preexec_fn: remove the capabilities that let root ignore file permissions
    from the bounding set, so the exec'd child (still uid 0) obeys permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def python_without_dac(code: str) -> subprocess.CompletedProcess[str] | None:
    """``python -c CODE`` with :func:`drop_dac_capabilities`, or None when the
    child could not be started that way (no capability drop here)."""
    try:
        return subprocess.run(
            [sys.executable, "-c", code],
            preexec_fn=drop_dac_capabilities,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def tool_digest(tool: str, path: Path) -> str:
    """Hex digest of ``path`` by a coreutils tool (md5sum, sha1sum, sha256sum,
    sha512sum, b2sum): an independent check of the library's hashing."""
    out = subprocess.run([tool, "--", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def sha256sum(path: Path) -> str:
    return tool_digest("sha256sum", path)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr: one ``custody: error: ...`` line, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), (
        f"expected one line on stderr, got: {proc.stderr!r}"
    )
    assert proc.stderr.startswith("custody: error: "), proc.stderr
    return proc.stderr.strip()
