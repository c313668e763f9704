"""custody report: the auditor's documents, from a case or from a bundle."""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

import click

from custody.display import shown
from custody.errors import UsageError
from custody.render import FORMATS, write
from custody_cli.common import LOOKUP, case_option, open_case, read_tsa_roots, tsa_cert_option


@click.command("report")
@click.argument("items", nargs=-1, type=LOOKUP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="html",
    show_default=True,
    help="html (one self-contained file), pdf, csv (one row per custody event), json,"
    " case (CASE/UCO JSON-LD) or certification (FRE 902(14) draft, Markdown).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write ('-' for standard output).",
)
@click.option(
    "--bundle",
    "bundle_path",
    type=click.Path(path_type=Path),
    help="Report on this evidence bundle (verified now) instead of the case.",
)
@click.option(
    "--trust",
    multiple=True,
    metavar="PUBFILE|FINGERPRINT",
    help="With --bundle: a key you trust (repeatable).",
)
@click.option(
    "--detail",
    type=click.Choice(["auto", "all"]),
    default=None,
    help="Which items get detail pages (metadata, hand-overs, timeline): auto, the"
    " failing items and those named (default for html, pdf, json); all, every item"
    " (default for csv, case and certification, which list every event).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--progress", "force_progress", is_flag=True, help="A progress bar even when not a terminal."
)
@tsa_cert_option
@case_option
def report(
    items: tuple[str, ...],
    fmt: str,
    out: Path,
    bundle_path: Path | None,
    trust: tuple[str, ...],
    detail: str | None,
    quiet: bool,
    force_progress: bool,
    tsa_certs: tuple[Path, ...],
    case_dir: Path | None,
) -> None:
    """Write a custody report of the case (or of ITEMS only): case header, a full
    verification run now, every item with its digests and custody timeline, the
    keys involved.  The report's own SHA-256 is printed, and the report names the
    ledger state it was made from.  Exit 0 when the verification passed, 1 when
    the report records integrity findings (it is written either way)."""
    from custody.report import bundle_report, case_report, gc_paused
    from custody.safeio import atomic_output

    roots = read_tsa_roots(tsa_certs)
    detail = detail or ("auto" if fmt in ("html", "pdf", "json") else "all")
    digest = hashlib.sha256()
    with contextlib.ExitStack() as stack:
        cb = stack.enter_context(_items_bar(not quiet and (force_progress or sys.stderr.isatty())))
        if bundle_path is not None:
            model = bundle_report(
                bundle_path,
                items,
                trust=trust,
                tsa_roots=roots,
                detail=detail,
                progress=cb,
                stream=True,
            )
        else:
            if trust:
                raise UsageError("--trust applies to --bundle reports")
            ledger = stack.enter_context(open_case(case_dir, write=False))
            model = case_report(
                ledger, items, tsa_roots=roots, detail=detail, progress=cb, stream=True
            )
        # the items are made as the renderer writes them, into the output as it goes
        sink = (
            sys.stdout.buffer
            if str(out) == "-"
            else stack.enter_context(atomic_output(out, what="report"))
        )
        with gc_paused():  # hundreds of thousands of small objects, none of them garbage
            write(model, fmt, cast(IO[bytes], _Hashed(sink, digest)), cb)
        sink.flush()
    v = model["verification"]
    verdict = "PASSED" if v["ok"] else f"FAILED ({len(v['findings'])} finding(s))"
    if v.get("banner"):  # a bundle's verdict (custody.trust.verdict_banner)
        verdict = str(v["banner"])
    state = model["ledger_state"]
    click.echo(
        f"Report {shown(out)} ({fmt}): {len(model['items'])} item(s), verification {verdict},"
        f" made from the ledger at {state['size']} events, root {state['root']}",
        err=str(out) == "-",
    )
    click.echo(f"SHA-256 of the report: sha256:{digest.hexdigest()}", err=str(out) == "-")
    sys.exit(0 if v["ok"] else 1)


@contextmanager
def _items_bar(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar of the items assembled, on stderr (only when ``enabled``)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm  # here: only a report that shows progress pays its import

    with tqdm(total=0, unit=" items", desc="report", file=sys.stderr, dynamic_ncols=True) as bar:

        def cb(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield cb


class _Hashed(io.RawIOBase):
    """A binary output that also feeds what is written to a SHA-256."""

    def __init__(self, out: IO[bytes], digest: Any) -> None:
        super().__init__()
        self.out, self.digest = out, digest

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.out.write(data)
        return len(data)
