"""Built-in sample evidence for ``custody demo``: a small, realistic breach scene."""

from __future__ import annotations

import os
import socket
from pathlib import Path

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
