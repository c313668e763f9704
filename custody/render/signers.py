"""A signing key in words: the one text form of a key card that ``custody log``,
``show``, ``key list`` and every report format print (docs/custody-model.md, "Who
may act": every place custody shows who signed something shows the key's
fingerprint next to the name, and says who vouched for it).

A *key card* is the plain-JSON object :class:`custody.views.KeyCard` makes from the
custody replay (``schemas/report.schema.json``, ``$defs/key_card``)::

    {"fingerprint", "name", "role", "standing", "attested_by", "attested_by_name",
     "status", "revoked_at", "rotated_to"}

``standing`` is ``owner``, ``recovery``, ``delegate``, ``attested``,
``self-asserted`` or ``unknown``; ``status`` is ``active``, ``revoked`` or
``rotated``.  A self-asserted or unknown key is always marked in capitals.  This
module imports nothing else of custody, so every renderer may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FINGERPRINT_PREFIX = "sha256:"
SHORT_HEX = 16  # hex digits of a fingerprint shown to people (at least 16)

#: what each standing means, in the words the displays use
STANDING_WORDS = {
    "owner": "owner",
    "recovery": "recovery key",
    "delegate": "delegate",
    "attested": "attested",
    "self-asserted": "SELF-ASSERTED",
    "unknown": "UNKNOWN KEY",
}


def short_fp(fp: Any) -> str:
    """``sha256:`` and the first 16 hex digits of a fingerprint."""
    text = "" if fp is None else str(fp)
    if text.startswith(FINGERPRINT_PREFIX):
        return text[: len(FINGERPRINT_PREFIX) + SHORT_HEX]
    return text[:SHORT_HEX] if text else "—"


def attester_text(card: Mapping[str, Any]) -> str:
    """``Name sha256:<16 hex>`` of the key that attested ``card``'s key ("" if none)."""
    by = card.get("attested_by")
    if not by:
        return ""
    if by == card.get("fingerprint"):
        return "itself (the case's owner)"
    name = card.get("attested_by_name")
    return f"{name} {short_fp(by)}" if name else short_fp(by)


def standing_text(card: Mapping[str, Any]) -> str:
    """The key's standing, who attested it, and whether it was retired, e.g.
    ``attested by Dana Reyes sha256:c085c28ca070a2ca`` or
    ``SELF-ASSERTED: nobody attested this key``."""
    standing = str(card.get("standing") or "unknown")
    by = attester_text(card)
    if standing == "owner":
        text = "owner"
    elif standing == "recovery":
        text = "recovery key of the owner"
    elif standing == "delegate":
        text = f"delegate, attested by {by}" if by else "delegate"
    elif standing == "attested":
        text = f"attested by {by}" if by else "attested"
    elif standing == "self-asserted":
        text = "SELF-ASSERTED: nobody attested this key"
    else:
        text = "UNKNOWN KEY: not registered in this case"
    status = card.get("status")
    if status == "revoked":
        text += f"; revoked at event {card.get('revoked_at')}"
    elif status == "rotated":
        text += f"; replaced by {short_fp(card.get('rotated_to'))}"
    return text


def holder_text(card: Mapping[str, Any]) -> str:
    """``Name (role)`` of the key's holder, as the key registered them."""
    name = card.get("name")
    if not name:
        return "unregistered key"
    role = card.get("role")
    return f"{name} ({role})" if role else str(name)


def signer_text(card: Mapping[str, Any] | None) -> str:
    """One line: ``Name (role) sha256:<16 hex> [standing]``."""
    if not card:
        return "—"
    return f"{holder_text(card)} {short_fp(card.get('fingerprint'))} [{standing_text(card)}]"
