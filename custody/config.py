"""Per-user settings: where the default signing key is remembered.

``custody key new`` remembers the key it wrote as the default when there is
none yet (or with ``--default``), and ``custody key use FILE`` switches it, so
that a collector can ``cd`` into a case and ``custody collect`` without repeating
``--key``, and making a key for someone else does not take the collector's
place.  Order of precedence: ``--key``, ``$CUSTODY_KEY``, the default.
"""

from __future__ import annotations

import os
from pathlib import Path

from custody.errors import UsageError
from custody.safeio import CAP_CONFIG, read_input_text


def config_dir() -> Path:
    env = os.environ.get("CUSTODY_CONFIG_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "custody"


def _default_key_file() -> Path:
    return config_dir() / "default-key"


def remember_default_key(path: Path) -> None:
    """Write the default key's path, 0600 whatever the umask (it names where the
    user's signing key lies); replaced by an atomic rename."""
    d = config_dir()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest = _default_key_file()
    tmp = d / f".default-key.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)  # left by a killed command of this pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (str(path.resolve()) + "\n").encode("utf-8", "surrogateescape"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)


def has_usable_default() -> bool:
    """A default key is remembered and its file is still there (a default whose
    file is gone counts as none: ``key new`` may take its place)."""
    path = default_key()
    return path is not None and path.is_file()


def default_key() -> Path | None:
    try:
        text = read_input_text(_default_key_file(), "default key record", CAP_CONFIG).strip()
    except UsageError:
        return None
    return Path(text) if text else None


def resolve_key_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("CUSTODY_KEY")
    if env:
        return Path(env)
    return default_key()
