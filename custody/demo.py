"""``custody demo``: the whole collector's story on built-in sample evidence (a
small, realistic breach scene), told step by step as the docs number it.

:func:`run_demo` runs the story through the library, as the commands it names
would, and tells each step through a ``say`` callback (the CLI prints the lines).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from custody import __version__
from custody.display import shown
from custody.errors import UsageError

if TYPE_CHECKING:
    from custody.keys import Signer
    from custody.ledger import Ledger
    from custody.verify import VerifyReport

# 1x1 transparent PNG: exercises MIME detection of a binary format.
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

DEMO_PASSPHRASE = "demo-passphrase-not-secret"  # noqa: S105 - printed by the demo on purpose


def make_sample_evidence(root: Path) -> list[Path]:
    """Write the sample scene under ``root``; return the paths to collect."""
    host = root / "payroll-srv"
    (host / "var/log").mkdir(parents=True, exist_ok=True)
    (host / "etc").mkdir(parents=True, exist_ok=True)
    ssh = host / "home/svc/.ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    (host / "var/log/auth.log").write_text(
        "Nov 26 02:14:07 payroll sshd[4121]: Failed password for svc"
        " from 203.0.113.45 port 50522 ssh2\n"
        "Nov 26 02:14:11 payroll sshd[4121]: Accepted password for svc"
        " from 203.0.113.45 port 50522 ssh2\n"
        "Nov 26 02:15:40 payroll sudo:      svc : TTY=pts/0 ; PWD=/home/svc ; USER=root ;"
        " COMMAND=/usr/bin/tar czf /tmp/.p.tgz /srv/payroll\n"
    )
    (host / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "svc:x:1001:1001:payroll service:/home/svc:/bin/bash\n"
        "backup:x:1002:1002::/home/backup:/usr/sbin/nologin\n"
    )
    (ssh / "authorized_keys").write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx3m0e1S0x3cWm8b8KzGv9Q0v0tq3y0bq2b1oA1Xk9"
        " attacker@kali\n"
    )
    (ssh / "known_hosts").write_text("")  # an empty file is evidence too
    (host / "home/svc/screenshot.png").write_bytes(_PNG)
    # a file name that is not valid UTF-8 must survive exactly
    odd = os.fsencode(str(host / "home/svc")) + b"/notes-\xff\xfe.txt"
    with open(odd, "wb") as f:
        f.write(b"exfil staging notes\n")
    link = host / "home/svc/.bash_history"
    if not link.is_symlink():
        link.symlink_to("/dev/null")  # a classic anti-forensics trick
    return [host / "var/log/auth.log", host / "etc/passwd", host / "home/svc"]


def demo_hostname() -> str:
    return socket.gethostname()


CASE_ID = "DEMO-001"


@dataclass
class DemoResult:
    """Where the demo left its case, keys, checkpoints and report, and how it went."""

    root: Path
    case_dir: Path
    key_file: Path
    checkpoints: list[Path]
    selftest_ok: bool = False
    verification: VerifyReport | None = None  # the last one, None if the story stopped
    report: Path | None = None
    bundle: Path | None = None  # counsel's part: the bundle, verified with --trust
    bundle_verified: bool = False
    tamper_caught: bool = False  # a copy with one flipped byte failed (exit 1)
    lab_dir: Path | None = None  # the lab's part: the case that imported the bundle
    lab_verification: VerifyReport | None = None
    lab_report: Path | None = None

    @property
    def ok(self) -> bool:
        return (
            self.selftest_ok
            and self.verification is not None
            and self.verification.ok
            and self.bundle_verified
            and self.tamper_caught
            and self.lab_verification is not None
            and self.lab_verification.ok
        )


def run_demo(directory: Path | None, say: Callable[[str], None]) -> DemoResult:
    """Run the whole collector's story under ``directory`` (default: a new
    temporary directory), telling each step through ``say``.  The story stops
    after the self-test if it fails.  UsageError if ``directory`` already holds
    a demo."""
    # here: the demo pays for what it shows, not every command's start-up
    from custody.checkpoint import load_for_ledger, make_checkpoint, prove_consistency
    from custody.collect import collect
    from custody.hashing import parse_algorithms
    from custody.keys import generate_key
    from custody.ledger import Ledger
    from custody.lifecycle import transfer_id
    from custody.render import render
    from custody.report import case_report, document_digest
    from custody.selftest import record_selftest, run_selftest
    from custody.verify import verify_ledger
    from custody.views import table_lines, verification_lines
    from custody.writers import lifecycle_event, receive, transfer

    root = (directory or Path(tempfile.mkdtemp(prefix="custody-demo-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    case_dir = root / f"case-{CASE_ID}"
    key_file = root / "demo-collector.pem"
    if (case_dir / "custody.db").exists() or key_file.exists():
        raise UsageError(f"{root} already holds a demo; give an empty or new directory")
    result = DemoResult(root, case_dir, key_file, [root / "checkpoint-1.txt"])
    passphrase = DEMO_PASSPHRASE.encode()
    say(f"custody {__version__} demo in {root}")
    say("1. Sample evidence: a breached payroll server's files")
    paths = make_sample_evidence(root / "evidence")
    say("2. custody key new --name 'Demo Collector' --role collector")
    signer, _pub = generate_key("Demo Collector", "collector", passphrase, key_file)
    say(f"   key {key_file} (passphrase: {DEMO_PASSPHRASE!r}), fingerprint {signer.fingerprint}")
    say(f"3. custody init --case-id {CASE_ID}   (the collector's key opens it: its owner)")
    with Ledger.create(case_dir, CASE_ID, "Demo: payroll server breach", owner=signer) as ledger:
        say(f"   case in {case_dir}, owned by {signer.fingerprint}")
        say("4. custody collect ... --reason 'suspected credential theft'")
        summary = collect(
            ledger,
            signer,
            [str(p) for p in paths],
            reason="suspected credential theft",
            algorithms=parse_algorithms(None),
            selftest=False,  # run as step 11, after the story the docs number
        )
        counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
        say(f"   {len(summary.items)} items recorded ({counts})")
        say("5. custody list")
        rows = ledger.artifacts()
        for line in table_lines(
            ["ITEM", "OUTCOME", "SHA256", "MIME", "PATH"],
            [
                [
                    r["id"],
                    r["outcome"],
                    (r["sha256"] or "")[:16],
                    r["mime"] or "",
                    os.path.relpath(r["display_path"], root),
                ]
                for r in rows
            ],
        ):
            say(line)
        say("6. custody checkpoint --out checkpoint-1.txt   (give it to counsel)")
        cp1_text, _ = make_checkpoint(ledger, signer)
        cp1 = result.checkpoints[0]
        cp1.write_text(cp1_text)
        counsel, _ = generate_key("Demo Counsel", "counsel", passphrase, root / "demo-counsel.pem")
        first = rows[0]["id"]
        say(
            "7. custody key import demo-counsel.pub --name 'Demo Counsel' --role counsel"
            "   (the owner vouches for counsel's key)"
        )
        ledger.register_identity(signer, counsel.identity)
        say(f"   custody transfer {first} --to 'Demo Counsel'; custody receive (counsel)")
        t = transfer(
            ledger, signer, [first], "Demo Counsel", "hand-over to outside counsel", "incident room"
        )
        rec = receive(ledger, counsel, transfer_id(t.seq), "counsel's office")
        match = all(c["match"] for c in rec.data["items"].values())
        say(
            f"   {transfer_id(t.seq)}: released by Demo Collector, received by Demo"
            f" Counsel, digests {'match' if match else 'DO NOT MATCH'}"
        )
        lifecycle_event(ledger, counsel, "seal", [first], "sealed in evidence bag 0042")
        say(f"8. custody event seal {first}; custody checkpoint --out checkpoint-2.txt")
        cp2_text, _ = make_checkpoint(ledger, counsel)
        cp2 = root / "checkpoint-2.txt"
        cp2.write_text(cp2_text)
        result.checkpoints.append(cp2)
        old, new = load_for_ledger(ledger, cp1), load_for_ledger(ledger, cp2)
        proof = prove_consistency(ledger, old, new)
        say(
            f"9. custody prove consistency: the ledger at size {new.size} extends the one"
            f" at size {old.size} ({len(proof['proof'])} hashes, verified)"
        )
        say("10. custody verify --checkpoint checkpoint-1.txt")
        for line in verification_lines(verify_ledger(ledger, checkpoints=[cp1])):
            say(line)
        say("11. custody selftest   (known answers of every algorithm, recorded)")
        st = run_selftest()
        st_event = record_selftest(ledger, signer, st)
        result.selftest_ok = st.ok
        say(
            f"   {len(st.checks) - len(st.failed)}/{len(st.checks)} checks passed,"
            f" recorded as event {st_event.seq if st_event else '-'}"
        )
        if not st.ok:
            return result
        result.verification = verify_ledger(ledger, checkpoints=[cp1])
        say("12. custody report --format html --out report.html   (for the auditor)")
        html = render(case_report(ledger, verify=result.verification), "html")
        result.report = root / "report.html"
        result.report.write_bytes(html)
        say(f"   {result.report}  SHA-256 {document_digest(html)}")
        say("")
        _counsel(ledger, signer, root, result, say)
    if result.bundle is not None:
        _lab(root, key_file.with_suffix(".pub"), passphrase, result, say)
    say("")
    say("Try it yourself:")
    say(
        f"  export CUSTODY_CASE={case_dir} CUSTODY_KEY={key_file}"
        f" CUSTODY_PASSPHRASE={DEMO_PASSPHRASE}"
    )
    say("  custody log; custody show ITEM-1; custody verify --json")
    say(f"  custody prove inclusion ITEM-1 --checkpoint {cp2}")
    if result.bundle is not None and result.lab_dir is not None:
        say(f"  custody bundle verify {result.bundle} --trust {key_file.with_suffix('.pub')}")
        say(f"  custody list --case {result.lab_dir}")
    return result


def _counsel(
    ledger: Ledger, signer: Signer, root: Path, result: DemoResult, say: Callable[[str], None]
) -> None:
    """Counsel's part: a bundle, verified offline with the collector's public key
    (obtained out of band), and a copy with one flipped byte caught."""
    from custody.bundle import export_bundle, verify_bundle
    from custody.trust import VERIFIED

    bundle = root / f"bundle-{CASE_ID}"
    pub = result.key_file.with_suffix(".pub")
    say("Counsel, months later, on their own laptop (offline):")
    say(f"13. custody bundle export --all --out {bundle.name}   (the collector)")
    exported = export_bundle(ledger, signer, [], bundle)
    say(f"   {len(exported.items)} items, {exported.events} signed events, {exported.bytes} bytes")
    say(f"14. custody bundle verify {bundle.name} --trust {pub.name}")
    report = verify_bundle(bundle, trust=[str(pub)])
    result.bundle = bundle
    result.bundle_verified = report.verdict == VERIFIED
    if result.bundle_verified:
        say(
            f"   VERIFIED: {len(report.items)} items, {report.events} signed events, every"
            " signer vouched for by the key given"
        )
    else:
        say(f"   NOT VERIFIED: {len(report.findings)} problem(s)")
    copy = root / f"bundle-{CASE_ID}-tampered"
    shutil.copytree(bundle, copy)
    target = sorted(p for p in (copy / "data").rglob("*") if p.is_file() and p.stat().st_size)[0]
    target.chmod(0o600)
    data = bytearray(target.read_bytes())
    data[0] ^= 0x01
    target.write_bytes(bytes(data))
    say(f"15. one byte of {target.relative_to(copy)} flipped in a copy; custody bundle verify")
    bad = verify_bundle(copy, trust=[str(pub)])
    result.tamper_caught = not bad.ok
    say(f"   NOT VERIFIED (exit 1): {len(bad.findings)} problem(s) found")
    for f in bad.findings:
        say(f"     [{shown(f.kind)}] {shown(f.subject)}: {shown(f.detail)}")


def _lab(
    root: Path, pub: Path, passphrase: bytes, result: DemoResult, say: Callable[[str], None]
) -> None:
    """The lab's part: a case that trusts the collector's key, imports the bundle,
    lists the imported items and reports on them."""
    from custody.bundle import import_bundle
    from custody.keys import generate_key
    from custody.ledger import Ledger
    from custody.render import render
    from custody.report import case_report, document_digest
    from custody.trust import add_anchor, read_trust_key
    from custody.verify import verify_ledger
    from custody.views import case_items, table_lines

    assert result.bundle is not None
    lab_dir = root / "case-LAB-001"
    say("The lab, merging collectors' bundles into one case:")
    say("16. custody key new --name 'Demo Lab' --role examiner; custody init --case-id LAB-001")
    lab, _ = generate_key("Demo Lab", "examiner", passphrase, root / "demo-lab.pem")
    with Ledger.create(lab_dir, "LAB-001", "Demo: the lab's case", owner=lab) as ledger:
        say(f"17. custody trust add {pub.name}   (the lab's owner trusts the collector's key)")
        add_anchor(ledger, lab, read_trust_key(str(pub)), "Demo Collector")
        say(f"18. custody bundle import {result.bundle.name}")
        imported = import_bundle(ledger, lab, result.bundle)
        say(
            f"   {len(imported.items)} items of {imported.label} and {imported.events} signed"
            " events imported; every signer trusted"
        )
        say("19. custody list")
        rows = case_items(ledger)
        for line in table_lines(
            ["ITEM", "OUTCOME", "SHA256"],
            [[str(r["id"]), str(r["outcome"]), str(r["sha256"] or "")[:16]] for r in rows],
        ):
            say(line)
        result.lab_dir = lab_dir
        result.lab_verification = verify_ledger(ledger)
        say("20. custody report --format html --out report-lab.html")
        html = render(case_report(ledger, verify=result.lab_verification), "html")
        result.lab_report = root / "report-lab.html"
        result.lab_report.write_bytes(html)
        ok = "OK" if result.lab_verification.ok else "FAILED"
        say(f"   {result.lab_report}  SHA-256 {document_digest(html)}; verify: {ok}")
