"""Shared pieces of the CLI: the error handler, options, key and case loading."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from custody.config import resolve_key_path
from custody.display import shown
from custody.errors import (
    CorruptLedgerError,
    CustodyError,
    IntegrityError,
    KeyLoadError,
    UsageError,
    sqlite_error_class,
)
from custody.safeio import (
    CAP_CERTIFICATE,
    CAP_PASSPHRASE,
    UnsafeFileError,
    read_input,
    read_input_text,
)

if TYPE_CHECKING:  # imported where used: `custody --help` loads no crypto or SQLite layer
    from custody.keys import Signer
    from custody.ledger import Ledger

F = TypeVar("F", bound=Callable[..., Any])


class CustodyGroup(click.Group):
    """The one place where library errors become messages and exit codes.  A
    message is shown by the display rule (custody.display): it may echo a name,
    a path or a reason the user or the evidence supplied."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CustodyError as e:
            click.echo(f"custody: error: {shown(e.message)}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("custody: interrupted", err=True)
            ctx.exit(130)
        except click.Abort:  # Ctrl-C / Ctrl-D at a prompt: not an integrity finding
            click.echo("custody: aborted", err=True)
            ctx.exit(130)
        except click.UsageError as e:  # a bad option or argument: one line too (issue 15)
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"custody: error: {shown(e.format_message())}{hint}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except BrokenPipeError:  # `custody list | head`: the reader left, nothing to say
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)
        except sqlite3.DatabaseError as e:  # one the library did not map itself
            cls = sqlite_error_class(e, CorruptLedgerError)
            if issubclass(cls, IntegrityError):
                click.echo(f"custody: error: ledger is unreadable or corrupt: {shown(e)}", err=True)
            else:
                click.echo(f"custody: error: cannot use the ledger: {shown(e)}", err=True)
            ctx.exit(cls.exit_code)
        except OSError as e:
            click.echo(
                f"custody: error: {shown(e.strerror or e)}"
                + (f": {shown(e.filename)}" if e.filename else ""),
                err=True,
            )
            ctx.exit(3)
        except Exception as e:
            if os.environ.get("CUSTODY_DEBUG"):
                raise
            click.echo(
                f"custody: internal error: {type(e).__name__}: {shown(e)}"
                " (set CUSTODY_DEBUG=1 for details)",
                err=True,
            )
            ctx.exit(3)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


class EtaMeter:
    """Rate and time left from a moving window of progress samples: the rate is
    measured over the last ``window`` seconds (not since the start, and not from
    one burst), and no estimate is given before ``warmup`` seconds of data.
    ``clock`` is injectable so the behaviour can be tested without waiting."""

    def __init__(
        self,
        total: int,
        *,
        window: float = 10.0,
        warmup: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.window = window
        self.warmup = warmup
        self.clock = clock
        self.done = 0
        self.start = clock()
        self.samples: deque[tuple[float, int]] = deque([(self.start, 0)])

    def add(self, n: int) -> None:
        if n <= 0:
            return  # a file counted, no bytes: nothing for the rate (and no sample to keep)
        now = self.clock()
        self.done += n
        self.samples.append((now, self.done))
        # keep one sample at or before the window's start, so the window is full
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Units per second over the window; None until ``warmup`` seconds passed."""
        now = self.clock()
        if now - self.start < self.warmup:
            return None
        t0, d0 = self.samples[0]
        if now - t0 <= 0:
            return None
        return (self.done - d0) / (now - t0)

    def eta(self) -> float | None:
        """Seconds left at the moving rate, or None (too early, or no progress)."""
        r = self.rate()
        if r is None or r <= 0:
            return None
        return max(0.0, (self.total - self.done) / r)


def _clock_text(seconds: float) -> str:
    s = int(seconds + 0.5)
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


def _bytes_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextmanager
def progress_bar(
    total: int, enabled: bool, desc: str
) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr.  Its rate and ETA come from :class:`EtaMeter`
    (a moving window, shown only after a few seconds of data), not tqdm's own."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm  # here: only commands that show progress pay its import

    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
    ) as bar:
        files = 0
        meter = EtaMeter(total)
        shown_at = 0.0

        def cb(nbytes: int, nfiles: int) -> None:
            nonlocal files, shown_at
            files += nfiles
            meter.add(nbytes)
            now = meter.clock()
            if now - shown_at >= 0.5:
                shown_at = now
                parts = [f"{files} files"] if files else []
                rate, eta = meter.rate(), meter.eta()
                if rate is not None:
                    parts.append(f"{_bytes_text(rate)}/s")
                if eta is not None:
                    parts.append(f"{_clock_text(eta)} left")
                bar.set_postfix_str(", ".join(parts), refresh=False)
            if nbytes:
                bar.update(nbytes)

        yield cb


# -- shared options ---------------------------------------------------------------


#: characters a one-line value may not hold: C0 and C1 controls, DEL, the line and
#: paragraph separators and the bidi controls (a case id, title, name, role or
#: organization becomes a header, note or bag-info line, and is a label)
_NOT_IN_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
#: characters free text (a reason, a note) may not hold: NUL, and the lone
#: surrogates that carry bytes that are not UTF-8 (checked first, by encoding)
_NOT_IN_TEXT = re.compile("\x00")
LINE_MAX = 1024
TEXT_MAX = 65536


if TYPE_CHECKING:
    _ParamType = click.ParamType[str]
else:  # generic from click 8.2; setup.cfg allows 8.1
    _ParamType = click.ParamType


class TextType(_ParamType):
    """Text the user gives that custody records or looks up: checked once, here, at
    the CLI boundary, so the library never sees it wrong.  It must be valid UTF-8
    (an argument of bytes that are not arrives as lone surrogates and is refused);
    a one-line value (``multiline=False``) holds no control, separator or bidi
    character; free text holds no NUL.  A refusal is a :class:`UsageError`: one
    ``custody: error:`` line, exit 2."""

    name = "text"

    def __init__(self, *, multiline: bool = False, empty_ok: bool = True) -> None:
        self.multiline = multiline
        self.empty_ok = empty_ok

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = value if isinstance(value, str) else str(value)
        what = _param_label(param)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise UsageError(
                f"{what} is not valid UTF-8 text (at character {e.start + 1}): {text[:80]}"
            ) from None
        limit = TEXT_MAX if self.multiline else LINE_MAX
        if len(text) > limit:
            raise UsageError(f"{what} is too long ({len(text)} characters; at most {limit})")
        if not self.empty_ok and not text.strip():
            raise UsageError(f"{what} must not be empty")
        bad = (_NOT_IN_TEXT if self.multiline else _NOT_IN_LINE).search(text)
        if bad is not None:
            kind = "free text" if self.multiline else "a single line"
            raise UsageError(
                f"{what} must be {kind} without control characters"
                f" (U+{ord(bad.group()):04X} at character {bad.start() + 1}): {text[:80]}"
            )
        return text


def _param_label(param: click.Parameter | None) -> str:
    if param is None:
        return "a value"
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return param.human_readable_name


#: one line of text: a title, a location, a URL
LINE = TextType()
#: one line that must not be empty (case id, key holder's name and role)
NAME_LINE = TextType(empty_ok=False)
#: free text, several lines allowed: a reason, a note
TEXT = TextType(multiline=True)
#: what names something the case already holds (an item, an event, a key's name or
#: fingerprint, a file): looked up, never recorded, so only valid UTF-8 is asked (a
#: key registered under a hostile name is still found by it)
LOOKUP = TextType(multiline=True)


def _inherit_case(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """A command's --case, else the group's: ``custody --case DIR COMMAND`` works as
    well as ``custody COMMAND --case DIR`` for every command that takes --case."""
    if value is None and ctx.parent is not None:
        inherited = ctx.find_root().params.get("case_dir")
        return inherited if isinstance(inherited, Path) else None
    return value


def case_option(f: F) -> F:
    return click.option(
        "--case",
        "case_dir",
        type=click.Path(file_okay=False, path_type=Path),
        callback=_inherit_case,
        help="Case directory (default: $CUSTODY_CASE, else the nearest parent holding custody.db).",
    )(f)


#: the digests a collection computes (collect, capture)
hash_option = click.option(
    "--hash",
    "hash_spec",
    default="md5,sha1,sha256",
    show_default=True,
    type=LOOKUP,
    help="Digests to compute: any of md5, sha1, sha256, sha512, blake2b (sha256 always).",
)
#: skip the self-test a case's first collection runs (collect, capture)
no_selftest_option = click.option(
    "--no-selftest",
    is_flag=True,
    help="Skip the self-test the first collection of a case runs and records.",
)


def tsa_cert_option(f: F) -> F:
    """--tsa-cert, read with :func:`read_tsa_roots`."""
    return click.option(
        "--tsa-cert",
        "tsa_certs",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Trusted RFC 3161 authority root certificate, PEM (repeatable; default:"
        " $CUSTODY_TSA_CERT).",
    )(f)


def key_options(f: F) -> F:
    f = click.option(
        "--insecure-key",
        is_flag=True,
        help="Accept an unencrypted or group/world-readable private key.",
    )(f)
    f = click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the key passphrase from this file (else $CUSTODY_PASSPHRASE, else a prompt).",
    )(f)
    f = click.option(
        "--key",
        "key_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Signing key (default: $CUSTODY_KEY, else the key made by 'custody key new').",
    )(f)
    return f


def read_passphrase(passphrase_file: Path | None, *, confirm: bool = False) -> bytes:
    if passphrase_file is not None:
        try:
            text = read_input_text(passphrase_file, "passphrase file", CAP_PASSPHRASE)
        except UnsafeFileError as e:
            raise KeyLoadError(e.message) from None
        return text.rstrip("\r\n").encode("utf-8")
    env = os.environ.get("CUSTODY_PASSPHRASE")
    if env is not None:
        return env.encode("utf-8")
    if not sys.stdin.isatty():
        raise KeyLoadError(
            "a passphrase is needed: give --passphrase-file or set CUSTODY_PASSPHRASE"
        )
    value: str = click.prompt(
        "Key passphrase", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return value.encode("utf-8")


def load_key(key_path: Path | None, passphrase_file: Path | None, insecure: bool) -> Signer:
    path = resolve_key_path(key_path)
    if path is None:
        raise KeyLoadError(
            "no signing key: give --key FILE, set CUSTODY_KEY, or run 'custody key new'"
        )
    if not path.exists():
        raise KeyLoadError(f"key file not found: {path}")
    from custody.keys import load_signer

    return load_signer(path, read_passphrase(passphrase_file), insecure=insecure)


def open_case(case_dir: Path | None, *, write: bool = True) -> Ledger:
    """The case of --case (the command's or the group's, see :func:`case_option`),
    else $CUSTODY_CASE, else the nearest parent holding custody.db.  A command that
    only reads opens it with ``write=False``: read-only, nothing written to it."""
    from custody.ledger import Ledger, find_case_dir

    return Ledger.open(find_case_dir(case_dir), write=write)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    from custody.views import table_lines

    for line in table_lines(headers, rows):
        click.echo(line)


def pem_or_none(b64: str | None) -> str | None:
    """PEM of a stored public key, or None if the stored value is not one
    (a tampered table; verify reports it)."""
    from custody.keys import public_key_pem

    try:
        return public_key_pem(base64.b64decode(b64 or "", validate=True))
    except ValueError:
        return None


def read_tsa_roots(paths: tuple[Path, ...]) -> list[bytes]:
    env = os.environ.get("CUSTODY_TSA_CERT")
    chosen = list(paths) or ([Path(env)] if env else [])
    out = []
    for p in chosen:
        out.append(read_input(p, "TSA certificate", CAP_CERTIFICATE)[0])
    return out
