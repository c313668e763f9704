"""Errors that carry their own user-facing message and exit code.

Exit codes (the contract, see docs/exit-codes.md):

* 0 - success, nothing wrong found
* 1 - an integrity problem was found (verification failed, ledger corrupt)
* 2 - usage error or bad input (missing path, wrong or missing passphrase or key,
  insecure key file, not a case, a custody rule broken)
* 3 - operational failure (I/O error, disk full, ledger locked past the timeout)

The CLI has a single ``except CustodyError`` that prints ``message`` on one line of
stderr and exits with ``exit_code``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from custody.findings import Finding

EXIT_OK = 0
EXIT_INTEGRITY = 1
EXIT_USAGE = 2
EXIT_OPERATIONAL = 3


class CustodyError(Exception):
    """Base class: every error a user may see."""

    exit_code: int = EXIT_OPERATIONAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(CustodyError):
    """The user asked for something impossible or gave bad input (exit 2)."""

    exit_code = EXIT_USAGE


class NotACaseError(UsageError):
    """No case directory (custody.db) could be found."""


class BadPathError(UsageError):
    """A path named on the command line does not exist or cannot be used."""


class KeyLoadError(UsageError):
    """A key file is missing, malformed, or the passphrase is wrong."""


class InsecureKeyError(UsageError):
    """A private key is unencrypted or readable by group/others."""


class CustodyRuleError(UsageError):
    """The action breaks a custody rule (e.g. only the custodian may transfer).

    ``findings`` are what the custody replay would record of the refused event,
    the very findings ``verify`` reports if such an event is in a ledger."""

    def __init__(self, message: str, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.findings = list(findings)

    @classmethod
    def of(cls, findings: Sequence[Finding]) -> CustodyRuleError:
        """The refusal of an event the replay would record ``findings`` of: each
        one named by its kind, as ``verify`` would report it."""
        return cls("; ".join(f"[{f.kind}] {f.detail}" for f in findings), findings)


class KeyRevokedError(CustodyRuleError):
    """The signing key was revoked or rotated away in this case (``revoked-key``)."""


class IntegrityError(CustodyError):
    """An integrity problem was found (exit 1)."""

    exit_code = EXIT_INTEGRITY


class CorruptLedgerError(IntegrityError):
    """custody.db is not a readable custody ledger."""


class OperationalError(CustodyError):
    """The operation failed for reasons outside the user's input (exit 3)."""

    exit_code = EXIT_OPERATIONAL


class LedgerLockedError(OperationalError):
    """Another writer held the ledger past the busy timeout."""


class StoreError(OperationalError):
    """The evidence store could not be written or read back."""


class DiskFullError(StoreError):
    """The store ran out of space."""


# -- SQLite errors, by result code -------------------------------------------------

#: primary SQLite result codes (``sqlite_errorcode & 0xFF``) and what they mean
#: here; any other code is the caller's default
SQLITE_ERRORS: dict[int, type[CustodyError]] = {
    # another connection holds the lock past the busy timeout
    sqlite3.SQLITE_BUSY: LedgerLockedError,
    sqlite3.SQLITE_LOCKED: LedgerLockedError,
    # the medium or the machine, not the evidence
    sqlite3.SQLITE_IOERR: OperationalError,
    sqlite3.SQLITE_FULL: OperationalError,
    sqlite3.SQLITE_READONLY: OperationalError,
    sqlite3.SQLITE_CANTOPEN: OperationalError,
    sqlite3.SQLITE_PERM: OperationalError,
    sqlite3.SQLITE_NOMEM: OperationalError,
    sqlite3.SQLITE_NOLFS: OperationalError,
    sqlite3.SQLITE_PROTOCOL: OperationalError,
    # the file is not an intact SQLite database
    sqlite3.SQLITE_CORRUPT: CorruptLedgerError,
    sqlite3.SQLITE_NOTADB: CorruptLedgerError,
    sqlite3.SQLITE_FORMAT: CorruptLedgerError,
}


def sqlite_error_class(
    e: sqlite3.Error, default: type[CustodyError] = CorruptLedgerError
) -> type[CustodyError]:
    """The CustodyError class (and so the exit code) a SQLite error means, chosen by
    its result code (``e.sqlite_errorcode``, Python 3.11+), never by its message
    text: busy or locked -> :class:`LedgerLockedError` (3); I/O error, disk full,
    read-only, cannot open, permission -> :class:`OperationalError` (3); corrupt or
    not a database -> :class:`CorruptLedgerError` (1); any other code, or none (an
    error of Python's sqlite3 module itself), -> ``default``."""
    code = getattr(e, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return default
    return SQLITE_ERRORS.get(code & 0xFF, default)
