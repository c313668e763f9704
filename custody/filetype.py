"""File type identification with libmagic, as the collector records it.

Store objects are typed with :func:`detect` (custody.describe: in worker
processes, one pair of handles each: a libmagic handle is not safe to share),
and the self-test checks the same function against known samples.
"""

from __future__ import annotations

from typing import Any

Handles = tuple[Any, Any]  # (MIME handle, description handle)

#: What to install where libmagic is missing (Debian and Ubuntu package names).
INSTALL_HINT = "install the libmagic1 package (apt-get install libmagic1)"


def unavailable() -> str | None:
    """Why files cannot be typed on this machine (libmagic, or its Python binding
    python-magic, cannot be loaded), or None when they can.  Without it stored
    objects are left untyped (no describe events) and the self-test skips its
    libmagic checks."""
    try:
        import magic  # noqa: F401  (python-magic loads libmagic when imported)
    except ImportError as e:
        return f"libmagic is not available ({e}); {INSTALL_HINT}"
    except OSError as e:  # a libmagic that is present but cannot be loaded
        return f"libmagic cannot be loaded ({e}); {INSTALL_HINT}"
    return None


def open_handles() -> Handles:
    """A (MIME, description) pair of libmagic handles for one process or thread."""
    import magic  # here: its import is paid by collections (and the self-test) only

    return (magic.Magic(mime=True), magic.Magic())


def detect(path: str, handles: Handles) -> tuple[str, str]:
    """(MIME type, description) of the file at ``path``."""
    desc: str = handles[1].from_file(path)
    if desc == "data":  # nothing recognised: libmagic's MIME answer is fixed
        return "application/octet-stream", desc
    mime: str = handles[0].from_file(path)
    return mime, desc
