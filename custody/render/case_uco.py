"""The report as CASE/UCO JSON-LD (https://caseontology.org), for tools that read
the Cyber-investigation Analysis Standard Expression.  UTF-8, 2-space indent.

The graph validates against CASE 1.5.0 / UCO 1.4.0 (``case_validate`` from
case-utils conforms with no warnings).  Mapping:

* each item: a ``uco-observable:File`` (``Directory``/``SymbolicLink`` for those
  outcomes) with a ``FileFacet`` (name, path, size) and a ``ContentDataFacet``
  (MIME type, one ``uco-types:Hash`` per digest, method ``"MD5"``/``"SHA1"``/... as
  a plain string, value ``xsd:hexBinary``; a digest outside UCO's HashNameVocab is
  written in the file's description instead);
* each key holder: a ``uco-identity:Person`` per signing key (a rotation's new key
  speaks for the same person; two keys under one name are two people), with
  ``uco-core:name``, role via a ``uco-role:Role`` and a ``Has_Role``
  relationship, and its keys in its description: fingerprint, standing (owner,
  delegate, attested by whom, or SELF-ASSERTED) and status; the tool: a
  ``uco-tool:Tool``;
* each ledger event in an item's timeline (collection, release, receipt, seal, ...):
  a ``case-investigation:InvestigativeAction`` (performer = the signer, instrument =
  the tool, result = the file for a collection, object = the file(s) otherwise,
  start time, reason/location/signature/event hash in descriptions).  A release has
  the receiver as ``uco-action:participant``; the receipt is its own action,
  performed by the receiver, ``wasInformedBy`` the release;
* the verification run now: an ``InvestigativeAction`` whose results are one
  ``uco-core:Annotation`` per item, stating ``intact`` or ``INTEGRITY FAILURE: ...``;
* one ``case-investigation:ProvenanceRecord`` per item (exhibit number = item id,
  objects = the file and its annotation), the integrity statement first among its
  descriptions;
* a ``case-investigation:Investigation`` for the case (name = case id,
  description = title, then the ledger state the report was made from).

Text fields that are data (names, file paths, ids, hashes) are exact, as in every
JSON output; the ``uco-core:description`` sentences, composed for people from
names, reasons, locations and paths, follow the display rule (custody.display:
control, bidi and separator characters and the backslash escaped); a path's exact
bytes are in its description as hex.

Node IRIs are ``urn:custody:<case id, percent-encoded>:<Kind>-<uuid5>``, deterministic from the case
id and what the node stands for, so the same model gives byte-identical output.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from custody.display import shown
from custody.render.signers import signer_text, standing_text

CONTEXT: dict[str, str] = {
    "case-investigation": "https://ontology.caseontology.org/case/investigation/",
    "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
    "uco-location": "https://ontology.unifiedcyberontology.org/uco/location/",
    "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "uco-role": "https://ontology.unifiedcyberontology.org/uco/role/",
    "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

# custody's algorithm names -> UCO HashNameVocab (UCO 1.4.0: plain xsd:string values)
HASH_METHODS = {
    "md5": "MD5",
    "sha1": "SHA1",
    "sha224": "SHA224",
    "sha256": "SHA256",
    "sha384": "SHA384",
    "sha512": "SHA512",
    "sha3-256": "SHA3-256",
    "sha3-512": "SHA3-512",
}

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_NAME_ROLE = re.compile(r"^(.*) \(([^()]*)\)$")


def _typed(value: object, datatype: str) -> dict[str, str]:
    return {"@type": datatype, "@value": str(value)}


def _ref(iri: str) -> dict[str, str]:
    return {"@id": iri}


def _refs(iris: Iterable[str]) -> list[dict[str, str]]:
    return [_ref(i) for i in dict.fromkeys(iris)]


def _time(value: Any) -> dict[str, str] | None:
    """An xsd:dateTime literal, or None when the model has no valid time."""
    if isinstance(value, str) and _DATETIME.match(value):
        return _typed(value, "xsd:dateTime")
    return None


def _split_who(text: Any) -> tuple[str, str]:
    """``"Name (role)"`` (the model's way of naming a key holder) -> (name, role)."""
    s = str(text or "")
    m = _NAME_ROLE.match(s)
    return (m.group(1), m.group(2)) if m else (s, "")


class _Graph:
    """The nodes of the report, with deterministic IRIs."""

    def __init__(self, case_id: str) -> None:
        self.prefix = f"urn:custody:{quote(case_id, safe='')}:"
        self.namespace = uuid.uuid5(uuid.NAMESPACE_URL, self.prefix)
        self.nodes: dict[str, dict[str, Any]] = {}

    def iri(self, kind: str, *key: object) -> str:
        suffix = uuid.uuid5(self.namespace, "/".join([kind, *map(str, key)]))
        return f"kb:{kind}-{suffix}"

    def add(self, iri: str, type_: str, **props: Any) -> dict[str, Any]:
        node: dict[str, Any] = {"@id": iri, "@type": type_}
        node.update({k: v for k, v in props.items() if v not in (None, [], "")})
        self.nodes[iri] = node
        return node


def render(report: dict[str, Any]) -> bytes:
    case = report.get("case") or {}
    g = _Graph(str(case.get("id", "")))
    tool = _tool(g, str(report.get("tool", "custody")))
    people = _People(g, report)
    items = [i for i in report.get("items") or [] if isinstance(i, dict)]
    files = {str(i["id"]): _file(g, i) for i in items}

    actions = _actions(g, items, files, people, tool)
    annotations = {str(i["id"]): _annotation(g, i, files[str(i["id"])]) for i in items}
    verification = _verification(g, report, files, annotations, tool)
    records = [_provenance(g, i, files[str(i["id"])], annotations[str(i["id"])]) for i in items]
    _investigation(g, report, [*records, *actions, verification])

    for node in g.nodes.values():  # prose composed for people: the display rule
        desc = node.get("uco-core:description")
        if isinstance(desc, list):
            node["uco-core:description"] = [shown(d) for d in desc]
        elif isinstance(desc, str):
            node["uco-core:description"] = shown(desc)
    doc = {
        "@context": {"kb": g.prefix, **CONTEXT},
        "@graph": [
            {k: v for k, v in node.items() if v not in (None, [], "")} for node in g.nodes.values()
        ],
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# -- the tool and the people --------------------------------------------------------


def _tool(g: _Graph, text: str) -> str:
    name, _, version = text.partition(" ")
    iri = g.iri("Tool", text)
    g.add(
        iri,
        "uco-tool:Tool",
        **{
            "uco-core:name": name or "custody",
            "uco-tool:version": version or None,
            "uco-tool:toolType": "evidence chain-of-custody ledger",
        },
    )
    return iri


class _People:
    """One ``Person`` per key holder: per signing key, rotations followed (the new
    key of a rotation speaks for the same person), never merged by name, since two
    keys can carry the same name.  Each Person's description lists its keys with
    their standing and status.  A model without key cards falls back to one Person
    per ``"Name (role)"``."""

    def __init__(self, g: _Graph, report: dict[str, Any]) -> None:
        self.g = g
        self.persons: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, str] = {}
        keys = [k for k in report.get("keys") or [] if isinstance(k, dict)]
        self.successor = {
            str(k.get("fingerprint")): str(k["rotated_to"]) for k in keys if k.get("rotated_to")
        }
        for k in keys:
            iri = self.key(k)
            if iri is None:
                continue
            status = str(k.get("status", "active"))
            if status == "revoked":
                status = f"revoked at event {k.get('revoked_at')}"
            elif status == "rotated":
                status = f"rotated to {k.get('rotated_to')}"
            self.g.nodes[iri]["uco-core:description"].append(
                f"signing key {k.get('fingerprint')} ({standing_text({**k, 'status': 'active'})};"
                f" {status}, {k.get('signed_events', 0)} events signed;"
                f" public key {k.get('public_key')})"
            )
        for e in (report.get("case") or {}).get("examiners") or []:
            if isinstance(e, dict) and e.get("fingerprint"):
                self.key(e)
            elif isinstance(e, dict):
                self.person(str(e.get("name")), str(e.get("role", "")))

    def _final(self, fp: str) -> str:
        seen = {fp}
        while fp in self.successor and self.successor[fp] not in seen:
            fp = self.successor[fp]
            seen.add(fp)
        return fp

    def key(self, card: Any, fallback: Any = None) -> str | None:
        """The Person holding the key of a key card (``fallback``, a ``"Name (role)"``
        string, when there is no card)."""
        if not isinstance(card, dict) or not card.get("fingerprint"):
            return self.who(fallback)
        name = str(card.get("name") or card.get("fingerprint"))
        return self._person(f"key {self._final(str(card['fingerprint']))}", name, card.get("role"))

    def person(self, name: str, role: str = "") -> str:
        """The Person of a name (a model without key cards)."""
        return self._person(f"name {name}", name, role)

    def _person(self, key: str, name: str, role: Any) -> str:
        iri = self.g.iri("Person", key)
        if key not in self.persons:
            self.persons[key] = self.g.add(iri, "uco-identity:Person", **{"uco-core:name": name})
            self.persons[key]["uco-core:description"] = []
        if role and role != "unknown":
            self._role(key, iri, str(role))
        return iri

    def who(self, text: Any) -> str | None:
        """The Person of a ``"Name (role)"`` string, or None for an empty one."""
        if not text:
            return None
        name, role = _split_who(text)
        return self.person(name, role)

    def _role(self, key: str, person: str, role: str) -> None:
        if role not in self.roles:
            self.roles[role] = self.g.iri("Role", role)
            self.g.add(self.roles[role], "uco-role:Role", **{"uco-core:name": role})
        rel = self.g.iri("Relationship", "Has_Role", key, role)
        if rel in self.g.nodes:
            return
        self.persons[key]["uco-core:description"].insert(0, f"role: {role}")
        self.g.add(
            rel,
            "uco-core:Relationship",
            **{
                "uco-core:source": _ref(person),
                "uco-core:target": _ref(self.roles[role]),
                "uco-core:kindOfRelationship": "Has_Role",
                "uco-core:isDirectional": _typed("true", "xsd:boolean"),
            },
        )


# -- the items -----------------------------------------------------------------------


def _file(g: _Graph, item: dict[str, Any]) -> str:
    item_id = str(item["id"])
    outcome = str(item.get("outcome", ""))
    path = str(item.get("path", ""))
    kind = {"directory": "Directory", "symlink": "SymbolicLink"}.get(outcome, "File")
    iri = g.iri(kind, item_id)
    base = path.rstrip("/").rsplit("/", 1)[-1] if path else ""
    size = item.get("size")

    facets = []
    file_facet = g.iri("FileFacet", item_id)
    g.add(
        file_facet,
        "uco-observable:FileFacet",
        **{
            "uco-observable:fileName": base,
            "uco-observable:filePath": path,
            "uco-observable:extension": base.rsplit(".", 1)[1] if "." in base.lstrip(".") else None,
            "uco-observable:isDirectory": _typed("true", "xsd:boolean")
            if outcome == "directory"
            else None,
            "uco-observable:sizeInBytes": _typed(size, "xsd:integer")
            if isinstance(size, int)
            else None,
        },
    )
    facets.append(file_facet)

    described = [f"evidence item {item_id}"]
    if item.get("description") and item["description"] != outcome:
        described.append(f"content: {item['description']}")
    described.append(f"collection outcome: {outcome}")
    if item.get("host"):
        described.append(f"host: {item['host']}")
    raw = _raw_path(item)
    if raw is not None:
        described.append(f"path bytes (hex): {raw}")

    hashes = []
    for alg, value in sorted((item.get("digests") or {}).items()):
        method = HASH_METHODS.get(str(alg).lower())
        if method is None or not _HEX.match(str(value)):
            described.append(f"{alg} digest: {value}")
            continue
        h = g.iri("Hash", item_id, alg)
        g.add(
            h,
            "uco-types:Hash",
            **{
                "uco-types:hashMethod": method,
                "uco-types:hashValue": _typed(value, "xsd:hexBinary"),
            },
        )
        hashes.append(h)
    mime = item.get("mime")
    if hashes or mime:
        content = g.iri("ContentDataFacet", item_id)
        g.add(
            content,
            "uco-observable:ContentDataFacet",
            **{
                "uco-observable:mimeType": mime if isinstance(mime, str) else None,
                "uco-observable:hash": _refs(hashes),
            },
        )
        facets.append(content)

    g.add(
        iri,
        f"uco-observable:{kind}",
        **{
            "uco-core:name": item_id,
            "uco-core:description": described,
            "uco-core:hasFacet": _refs(facets),
        },
    )
    return iri


def _raw_path(item: dict[str, Any]) -> str | None:
    """The path's bytes in hex when the display form is not their UTF-8 reading."""
    raw = str(item.get("path_hex", ""))
    try:
        if bytes.fromhex(raw).decode("utf-8") == item.get("path"):
            return None
    except ValueError:
        pass
    return raw or None


# -- the custody events --------------------------------------------------------------


def _actions(
    g: _Graph,
    items: list[dict[str, Any]],
    files: dict[str, str],
    people: _People,
    tool: str,
) -> list[str]:
    """One InvestigativeAction per ledger event in the items' timelines (an event
    about several items is one action with all their files)."""
    events: dict[int, dict[str, Any]] = {}
    objects: dict[int, list[str]] = {}
    hosts: dict[int, str] = {}
    handovers: dict[str, dict[str, Any]] = {}
    mismatched: dict[str, list[str]] = {}
    for item in items:
        item_id = str(item["id"])
        for row in item.get("timeline") or []:
            seq = int(row["seq"])
            events.setdefault(seq, row)
            objects.setdefault(seq, []).append(files[item_id])
            if row.get("type") == "collect" and item.get("host"):
                hosts[seq] = str(item["host"])
        for h in item.get("handovers") or []:
            handovers.setdefault(str(h.get("transfer")), h)
            if h.get("mismatch_on_receipt"):
                mismatched.setdefault(str(h.get("transfer")), []).append(item_id)
    releases = {
        str(row.get("transfer") or ""): g.iri("InvestigativeAction", seq)
        for seq, row in events.items()
        if row.get("type") == "transfer"
    }
    out = []
    for seq in sorted(events):
        row = events[seq]
        type_ = str(row.get("type"))
        iri = g.iri("InvestigativeAction", seq)
        performer = people.key(row.get("signer_key")) or people.person(
            str(row.get("actor")), str(row.get("role", ""))
        )
        participant = None
        informed_by = None
        desc = [f"event type: {type_}"]
        if row.get("reason"):
            desc.append(f"reason: {row['reason']}")
        if row.get("location"):
            desc.append(f"location: {row['location']}")
        transfer = str(row.get("transfer") or "")
        h = handovers.get(transfer, {})
        if type_ == "transfer":
            participant = people.key(h.get("to_key"), h.get("to"))
            desc.append(f"released by: {row.get('released_by') or row.get('actor')}")
            if h.get("to"):
                desc.append(f"to: {h['to']}")
            if h.get("status"):
                desc.append(f"hand-over status: {h['status']}")
        elif type_ == "receive":
            participant = people.key(h.get("released_by_key"), row.get("released_by"))
            informed_by = releases.get(transfer)
            desc.append(f"released by: {row.get('released_by')}")
            desc.append(f"received by: {row.get('received_by') or row.get('actor')}")
            if mismatched.get(transfer):
                desc.append("MISMATCH ON RECEIPT: " + ", ".join(mismatched[transfer]))
        verified = row.get("signature_verified")
        card = row.get("signer_key")
        standing = f" ({standing_text(card)})" if isinstance(card, dict) else ""
        desc.append(
            f"signature by {row.get('signer')}{standing}: "
            + ("verified" if verified else "NOT VERIFIED")
        )
        desc.append(f"ledger event {seq}: {row.get('hash')}")
        environment = None
        if seq in hosts:
            environment = _host(g, hosts[seq])
        collect = type_ == "collect"
        g.add(
            iri,
            "case-investigation:InvestigativeAction",
            **{
                "uco-core:name": str(row.get("action") or type_),
                "uco-core:description": desc,
                "uco-action:startTime": _time(row.get("time")),
                "uco-action:performer": _ref(performer),
                "uco-action:participant": _ref(participant) if participant else None,
                "uco-action:instrument": _ref(tool),
                "uco-action:environment": _ref(environment) if environment else None,
                "uco-action:location": _ref(_location(g, str(row["location"])))
                if row.get("location")
                else None,
                "uco-action:object": None if collect else _refs(objects[seq]),
                "uco-action:result": _refs(objects[seq]) if collect else None,
                "case-investigation:wasInformedBy": _ref(informed_by) if informed_by else None,
            },
        )
        out.append(iri)
    return out


def _host(g: _Graph, host: str) -> str:
    iri = g.iri("Device", host)
    if iri not in g.nodes:
        facet = g.iri("ComputerSpecificationFacet", host)
        g.add(
            facet,
            "uco-observable:ComputerSpecificationFacet",
            **{"uco-observable:hostname": host},
        )
        g.add(
            iri,
            "uco-observable:Device",
            **{"uco-core:name": host, "uco-core:hasFacet": [_ref(facet)]},
        )
    return iri


def _location(g: _Graph, text: str) -> str:
    iri = g.iri("Location", text)
    if iri not in g.nodes:
        g.add(iri, "uco-location:Location", **{"uco-core:name": text})
    return iri


# -- verification and provenance -----------------------------------------------------


def _integrity(item: dict[str, Any]) -> str:
    integrity = item.get("integrity") or {}
    if integrity.get("ok", False):
        return "intact"
    findings = integrity.get("findings") or []
    text = "; ".join(f"{f.get('kind')}: {f.get('subject')}: {f.get('detail')}" for f in findings)
    return f"INTEGRITY FAILURE: {text or 'verification failed'}"


def _annotation(g: _Graph, item: dict[str, Any], file: str) -> str:
    iri = g.iri("Annotation", item["id"])
    ok = bool((item.get("integrity") or {}).get("ok", False))
    statements = [_integrity(item)]
    found = item.get("verified_digests")
    if isinstance(found, dict) and found:
        statements.append(
            "digests re-computed at verification: "
            + ", ".join(f"{k} {v}" for k, v in sorted(found.items()))
        )
    g.add(
        iri,
        "uco-core:Annotation",
        **{
            "uco-core:name": f"integrity of {item['id']}",
            "uco-core:object": [_ref(file)],
            "uco-core:statement": statements,
            "uco-core:tag": "intact" if ok else "integrity-failure",
        },
    )
    return iri


def _verification(
    g: _Graph,
    report: dict[str, Any],
    files: dict[str, str],
    annotations: dict[str, str],
    tool: str,
) -> str:
    v = report.get("verification") or {}
    desc = [f"verification: {'passed' if v.get('ok') else 'FAILED'}"]
    if v.get("banner"):  # a bundle's verdict, worded once (custody.trust.verdict_banner)
        desc = [f"verification: {v['banner']}"]
    for step in v.get("steps") or []:
        desc.append(
            f"step {step.get('step')}: "
            + ("passed" if step.get("ok") else f"FAILED ({step.get('findings')} findings)")
        )
    for f in v.get("findings") or []:
        desc.append(f"finding {f.get('kind')}: {f.get('subject')}: {f.get('detail')}")
    desc.append(
        f"checked {v.get('events')} events, {v.get('items')} items, "
        f"{v.get('objects_checked')} stored objects, {v.get('bytes_checked')} bytes"
    )
    desc.extend(f"note: {n}" for n in v.get("notes") or [])
    desc.extend(f"warning: {w}" for w in v.get("warnings") or [])
    cp = v.get("latest_checkpoint")
    if isinstance(cp, dict):
        desc.append(
            f"latest checkpoint: event {cp.get('event')}, size {cp.get('size')}, "
            f"root {cp.get('root')}, signed by {cp.get('signer')}"
            + (
                f" ({signer_text(cp['signer_key'])})"
                if isinstance(cp.get("signer_key"), dict)
                else ""
            )
            + f" at {cp.get('time')}, "
            + ("signature verified" if cp.get("signature_verified") else "SIGNATURE NOT VERIFIED")
        )
    else:
        desc.append("latest checkpoint: none")
    for ts in v.get("timestamps") or []:
        desc.append(
            f"time-stamp token: event {ts.get('event')}, checkpoint {ts.get('checkpoint')}, "
            f"TSA {ts.get('tsa')}, " + ("checked" if ts.get("checked") else "not checked")
        )
    iri = g.iri("InvestigativeAction", "verification")
    g.add(
        iri,
        "case-investigation:InvestigativeAction",
        **{
            "uco-core:name": "verified",
            "uco-core:description": desc,
            "uco-action:startTime": _time(v.get("verified_at")),
            "uco-action:instrument": _ref(tool),
            "uco-action:object": _refs(files.values()),
            "uco-action:result": _refs(annotations.values()),
        },
    )
    return iri


def _provenance(g: _Graph, item: dict[str, Any], file: str, annotation: str) -> str:
    iri = g.iri("ProvenanceRecord", item["id"])
    desc = [_integrity(item)]
    if item.get("state"):
        desc.append(f"custody state: {item['state']}")
    custodian = item.get("custodian_key")
    if isinstance(custodian, dict):
        desc.append(f"custodian: {signer_text(custodian)}")
    elif item.get("custodian"):
        desc.append(f"custodian: {item['custodian']}")
    collector = item.get("collected_by_key")
    by = signer_text(collector) if isinstance(collector, dict) else item.get("collected_by")
    desc.append(f"collected {item.get('collected')} by {by}")
    desc += _source_lines(item)
    g.add(
        iri,
        "case-investigation:ProvenanceRecord",
        **{
            "case-investigation:exhibitNumber": str(item["id"]),
            "uco-core:name": str(item["id"]),
            "uco-core:description": desc,
            "uco-core:object": [_ref(file), _ref(annotation)],
        },
    )
    return iri


def _source_lines(item: dict[str, Any]) -> list[str]:
    """An imported item: its source case, the import event, then each of the
    source's signed events about it (its chain before this case)."""
    src = item.get("source")
    if not isinstance(src, dict):
        return []
    out = [
        f"imported from source {src.get('label')} (case {src.get('case_id')}, case header"
        f" hash {src.get('header_hash')}) as its {src.get('source_item')}, by ledger event"
        f" {src.get('import_event')} from bundle {src.get('bundle')}"
    ]
    for e in src.get("events") or []:
        card = e.get("signer_key")
        by = signer_text(card) if isinstance(card, dict) else e.get("signer")
        out.append(
            f"source event {e.get('seq')} ({e.get('hash')}): {e.get('action')}"
            f" {e.get('time')} by {by}, signature "
            + ("verified" if e.get("signature_verified") else "NOT VERIFIED")
        )
    return out


def _investigation(g: _Graph, report: dict[str, Any], objects: list[str]) -> str:
    case = report.get("case") or {}
    state = report.get("ledger_state") or {}
    source = report.get("source") or {}
    cp = state.get("checkpoint")
    desc = [str(case.get("title", ""))]
    desc.append(f"case header hash: {case.get('header_hash')}")
    desc.append(
        f"ledger state: size {state.get('size')}, root {state.get('root')}, "
        f"head {state.get('head')}, checkpoint "
        + (
            f"event {cp.get('event')} (size {cp.get('size')}, root {cp.get('root')})"
            if isinstance(cp, dict)
            else "none"
        )
    )
    desc.append(
        f"report generated {report.get('generated')} by {report.get('tool')} from "
        f"{source.get('kind')} {source.get('path')}"
    )
    iri = g.iri("Investigation", case.get("id"))
    g.add(
        iri,
        "case-investigation:Investigation",
        **{
            "uco-core:name": str(case.get("id", "")),
            "uco-core:description": desc,
            "uco-core:startTime": _time(case.get("created")),
            "uco-core:object": _refs(objects),
        },
    )
    return iri
