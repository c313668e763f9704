"""custody report --format case: CASE/UCO JSON-LD that case-utils' ``case_validate``
accepts (CASE 1.5.0), carrying the items, hashes, people, hand-over and the
integrity verdict of the shared report case."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import (  # noqa: F401
    ITEM1_BYTES,
    ITEM1_NAME,
    ITEM2_BYTES,
    LOCATION,
    REASON,
    ReportCase,
    report_case,
    report_template,
)

from custody.render import case_uco

EPOCH = "1800000000"  # SOURCE_DATE_EPOCH: the json and case reports share one model
IRI = re.compile(r"^kb:[A-Za-z]+-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
UCO_CORE = "https://ontology.unifiedcyberontology.org/uco/core/"


def _validator() -> str:
    exe = shutil.which("case_validate")
    if exe is None:
        pytest.skip("case_validate (case-utils) not installed")
    return exe


def _validate(*files: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [_validator(), *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def _reports(rc: ReportCase) -> tuple[Path, dict[str, Any]]:
    """The case report and the JSON model, made from one ledger state and one clock."""
    rc.env["SOURCE_DATE_EPOCH"] = EPOCH
    proc, out = rc.report("case")
    assert proc.returncode == 1, proc.stderr  # ITEM-2's findings
    assert out.is_file()
    jproc, jout = rc.report("json", "--detail", "all")
    assert jproc.returncode == 1, jproc.stderr
    return out, json.loads(jout.read_text(encoding="utf-8"))


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [] if v is None else [v]


def _ids(v: Any) -> list[str]:
    return [r["@id"] for r in _as_list(v)]


def _edge_model(model: dict[str, Any]) -> dict[str, Any]:
    """The fixture model bent into corners the real case does not reach: a
    directory, a symlink, a non-UTF-8 path, blake2b and sha512 digests, a hand-over
    still in transit to an unknown key, a checkpoint, a time-stamp, a missing time."""
    m = copy.deepcopy(model)
    m["case"]["id"] = "EDGE 1/ü"
    m["verification"]["latest_checkpoint"] = m["ledger_state"]["checkpoint"] = {
        "event": 9,
        "size": 9,
        "root": "ab" * 32,
        "signer": "sha256:" + "cd" * 32,
        "time": "2026-01-01T00:00:00Z",
        "signature_verified": False,
        "note": "n",
    }
    m["verification"]["timestamps"] = [
        {"event": 10, "checkpoint": 9, "tsa": "https://tsa.example", "checked": False}
    ]
    base = next(i for i in m["items"] if i["id"] == "ITEM-1")
    directory = {
        **copy.deepcopy(base),
        "id": "ITEM-7",
        "outcome": "directory",
        "description": "directory",
        "path": "/ev/dir",
        "path_hex": b"/ev/dir".hex(),
        "size": None,
        "mime": None,
        "digests": {},
        "verified_digests": None,
        "handovers": [],
        "timeline": [{**base["timeline"][0], "seq": 20, "time": ""}],
    }
    link = {
        **copy.deepcopy(directory),
        "id": "ITEM-8",
        "outcome": "symlink",
        "description": "symlink",
        "path": "/ev/link",
        "timeline": [{**base["timeline"][0], "seq": 21}],
    }
    raw = b"/ev/notes-\xff.txt"
    odd = {
        **copy.deepcopy(base),
        "id": "ITEM-9",
        "path": "/ev/notes-\\xff.txt",
        "path_hex": raw.hex(),
        "mime": "application/octet-stream",
        "digests": {"blake2b": "ee" * 64, "sha256": "11" * 32, "sha512": "22" * 64},
        "handovers": [
            {
                "transfer": "TRANSFER-23",
                "released_by": "Dana Reyes (collector)",
                "released": "2026-01-02T00:00:00Z",
                "release_signature_verified": False,
                "to": "sha256:99 (unknown)",
                "received_by": None,
                "received": None,
                "receipt_signature_verified": None,
                "reason": "",
                "location": "",
                "status": "in transit",
                "mismatch_on_receipt": False,
            }
        ],
        "timeline": [
            {**base["timeline"][0], "seq": 22},
            {
                **base["timeline"][1],
                "seq": 23,
                "transfer": "TRANSFER-23",
                "signature_verified": False,
                "location": "",
            },
        ],
    }
    m["items"] = [*m["items"], directory, link, odd]
    return m


def test_case_report_validates_and_maps_the_case(
    report_case: ReportCase,  # noqa: F811
    tmp_path: Path,
) -> None:
    out, model = _reports(report_case)
    data = out.read_bytes()
    # the CLI wrote exactly the renderer's output for the model (deterministic IRIs)
    assert data == case_uco.render(model)
    edge = tmp_path / "edge.jsonld"
    edge.write_bytes(case_uco.render(_edge_model(model)))
    code, stdout, stderr = _finish(_validate(out, edge))
    assert code == 0, stdout + stderr
    assert "Conforms: True" in stdout
    assert "NonExistentCDOConceptWarning" not in stderr

    doc = json.loads(data.decode("utf-8"))
    assert doc["@context"]["kb"] == "urn:custody:2026-017:"
    assert doc["@context"]["uco-core"] == UCO_CORE
    nodes = {n["@id"]: n for n in doc["@graph"]}
    assert len(nodes) == len(doc["@graph"])
    assert all(IRI.match(i) for i in nodes), [i for i in nodes if not IRI.match(i)]

    def of_type(t: str) -> list[dict[str, Any]]:
        return [n for n in nodes.values() if n["@type"] == t]

    def named(t: str, name: str) -> dict[str, Any]:
        (node,) = [n for n in of_type(t) if n.get("uco-core:name") == name]
        return node

    # the files, their facets and the exact hashes
    files = {f["uco-core:name"]: f for f in of_type("uco-observable:File")}
    assert sorted(files) == ["ITEM-1", "ITEM-2"]
    found: dict[str, dict[str, str]] = {}
    facets: dict[str, dict[str, dict[str, Any]]] = {}
    for item, f in files.items():
        facets[item] = {nodes[i]["@type"]: nodes[i] for i in _ids(f["uco-core:hasFacet"])}
        content = facets[item]["uco-observable:ContentDataFacet"]
        assert content["uco-observable:mimeType"] == "text/plain"
        for h in map(nodes.__getitem__, _ids(content["uco-observable:hash"])):
            assert h["@type"] == "uco-types:Hash"
            assert h["uco-types:hashValue"]["@type"] == "xsd:hexBinary"
            found.setdefault(item, {})[h["uco-types:hashMethod"]] = h["uco-types:hashValue"][
                "@value"
            ]
    assert {i: d["SHA256"] for i, d in found.items()} == report_case.sha256
    assert sorted(found["ITEM-1"]) == ["MD5", "SHA1", "SHA256"]
    ff = facets["ITEM-1"]["uco-observable:FileFacet"]
    assert ff["uco-observable:fileName"] == ITEM1_NAME
    assert ff["uco-observable:filePath"].endswith("/evidence/" + ITEM1_NAME)
    assert ff["uco-observable:sizeInBytes"] == {
        "@type": "xsd:integer",
        "@value": str(len(ITEM1_BYTES)),
    }
    assert facets["ITEM-2"]["uco-observable:FileFacet"]["uco-observable:sizeInBytes"][
        "@value"
    ] == str(len(ITEM2_BYTES))

    # people and the tool
    dana = named("uco-identity:Person", "Dana Reyes")
    lee = named("uco-identity:Person", "Lee Okafor")
    assert "role: collector" in dana["uco-core:description"]
    assert any(
        model["keys"][0]["fingerprint"] in d
        for d in named("uco-identity:Person", model["keys"][0]["name"])["uco-core:description"]
    )
    tool = named("uco-tool:Tool", "custody")
    assert tool["uco-tool:version"] == model["tool"].split()[1]

    # the hand-over: released by Dana (performer), to Lee (participant), then received
    actions = of_type("case-investigation:InvestigativeAction")
    handover = next(i for i in model["items"] if i["id"] == "ITEM-1")["handovers"][0]
    (release,) = [a for a in actions if "event type: transfer" in a["uco-core:description"]]
    assert release["uco-action:performer"] == {"@id": dana["@id"]}
    assert release["uco-action:participant"] == {"@id": lee["@id"]}
    assert release["uco-action:instrument"] == {"@id": tool["@id"]}
    assert release["uco-action:startTime"] == {
        "@type": "xsd:dateTime",
        "@value": handover["released"],
    }
    assert _ids(release["uco-action:object"]) == [files["ITEM-1"]["@id"]]
    assert f"reason: {REASON}" in release["uco-core:description"]
    place = nodes[release["uco-action:location"]["@id"]]
    assert place["@type"] == "uco-location:Location"
    assert place["uco-core:name"] == LOCATION
    assert f"location: {LOCATION}" in release["uco-core:description"]
    (receipt,) = [a for a in actions if "event type: receive" in a["uco-core:description"]]
    assert receipt["uco-action:performer"] == {"@id": lee["@id"]}
    assert receipt["uco-action:participant"] == {"@id": dana["@id"]}
    assert receipt["case-investigation:wasInformedBy"] == {"@id": release["@id"]}
    assert receipt["uco-action:startTime"]["@value"] == handover["received"]
    (collect1,) = [
        a
        for a in actions
        if files["ITEM-1"]["@id"] in _ids(a.get("uco-action:result"))
        and a["uco-core:name"] == "collected"
    ]
    assert collect1["uco-action:performer"] == {"@id": dana["@id"]}
    assert (
        collect1["uco-action:startTime"]["@value"]
        == next(i for i in model["items"] if i["id"] == "ITEM-1")["collected"]
    )
    (seal,) = [a for a in actions if "event type: seal" in a["uco-core:description"]]
    assert seal["uco-action:performer"] == {"@id": lee["@id"]}

    # one provenance record per item; ITEM-2 failing, ITEM-1 intact
    records = {
        r["case-investigation:exhibitNumber"]: r
        for r in of_type("case-investigation:ProvenanceRecord")
    }
    assert sorted(records) == ["ITEM-1", "ITEM-2"]
    for item, r in records.items():
        assert files[item]["@id"] in _ids(r["uco-core:object"])
    assert records["ITEM-1"]["uco-core:description"][0] == "intact"
    assert not any("FAILURE" in d for d in records["ITEM-1"]["uco-core:description"])
    failing = records["ITEM-2"]["uco-core:description"][0]
    assert failing.startswith("INTEGRITY FAILURE: object-digest: ITEM-2")
    assert f"sha256: expected {report_case.sha256['ITEM-2']}, found " in failing
    notes = {n["uco-core:tag"]: n for n in of_type("uco-core:Annotation")}
    assert _ids(notes["integrity-failure"]["uco-core:object"]) == [files["ITEM-2"]["@id"]]
    assert _ids(notes["intact"]["uco-core:object"]) == [files["ITEM-1"]["@id"]]

    # the investigation, and the ledger state the report was made from
    inv = named("case-investigation:Investigation", "2026-017")
    assert inv["uco-core:description"][0] == "Payroll server breach"
    assert set(_ids(inv["uco-core:object"])) >= {r["@id"] for r in records.values()}
    state = model["ledger_state"]
    assert (
        f"ledger state: size {state['size']}, root {state['root']}, "
        f"head {state['head']}, checkpoint none"
    ) in inv["uco-core:description"]
    (verify,) = [a for a in actions if a["uco-core:name"] == "verified"]
    assert "verification: FAILED" in verify["uco-core:description"]
    assert "step stored bytes: FAILED (3 findings)" in verify["uco-core:description"]


def test_edge_mapping() -> None:
    """Fallbacks of the mapping, without the validator (validated in the test above)."""
    model = {
        "tool": "custody 9.9",
        "case": {"id": "C 1", "title": "T", "examiners": []},
        "keys": [],
        "verification": {},
        "ledger_state": {},
        "items": [],
    }
    edge = _edge_model(
        {
            **model,
            "items": [
                {
                    "id": "ITEM-1",
                    "outcome": "collected",
                    "path": "/a/b.bin",
                    "path_hex": b"/a/b.bin".hex(),
                    "size": 3,
                    "mime": None,
                    "digests": {},
                    "integrity": {"ok": True, "findings": []},
                    "handovers": [],
                    "timeline": [
                        {
                            "seq": 2,
                            "type": "collect",
                            "action": "collected",
                            "time": "2026-01-01T00:00:00Z",
                            "actor": "Dana Reyes",
                            "role": "collector",
                            "signer": "sha256:aa",
                            "reason": "",
                            "location": "",
                            "signature_verified": True,
                            "hash": "h",
                        },
                        {
                            "seq": 3,
                            "type": "transfer",
                            "action": "released",
                            "time": "2026-01-01T00:00:01Z",
                            "actor": "Dana Reyes",
                            "role": "collector",
                            "signer": "sha256:aa",
                            "reason": "",
                            "location": "",
                            "signature_verified": True,
                            "hash": "h",
                        },
                    ],
                }
            ],
            "ledger_state": {"checkpoint": None},
        }
    )
    doc = json.loads(case_uco.render(edge))
    assert doc["@context"]["kb"] == "urn:custody:EDGE%201%2F%C3%BC:"
    nodes = {n["@id"]: n for n in doc["@graph"]}
    by_name = {
        n.get("uco-core:name"): n
        for n in nodes.values()
        if n["@type"].startswith("uco-observable:")
    }
    assert by_name["ITEM-7"]["@type"] == "uco-observable:Directory"
    assert by_name["ITEM-8"]["@type"] == "uco-observable:SymbolicLink"
    odd = by_name["ITEM-9"]
    raw = b"/ev/notes-\xff.txt".hex()
    assert f"path bytes (hex): {raw}" in odd["uco-core:description"]
    assert f"blake2b digest: {'ee' * 64}" in odd["uco-core:description"]
    hashes = [n for n in nodes.values() if n["@type"] == "uco-types:Hash"]
    assert sorted(h["uco-types:hashMethod"] for h in hashes) == ["SHA256", "SHA512"]
    actions = [n for n in nodes.values() if n["@type"] == "case-investigation:InvestigativeAction"]
    (dir_collect,) = [
        a for a in actions if by_name["ITEM-7"]["@id"] in _ids(a.get("uco-action:result"))
    ]
    assert "uco-action:startTime" not in dir_collect  # the model had no time
    (in_transit,) = [a for a in actions if "ledger event 23: h" in a["uco-core:description"]]
    assert "hand-over status: in transit" in in_transit["uco-core:description"]
    assert "signature by sha256:aa: NOT VERIFIED" in in_transit["uco-core:description"]
    assert nodes[in_transit["uco-action:participant"]["@id"]]["uco-core:name"] == "sha256:99"
    verify = next(a for a in actions if a["uco-core:name"] == "verified")
    assert any(
        d.startswith("latest checkpoint: event 9, size 9") and d.endswith("SIGNATURE NOT VERIFIED")
        for d in verify["uco-core:description"]
    )
    # byte-identical for the same model
    assert case_uco.render(edge) == case_uco.render(copy.deepcopy(edge))


def test_case_validate_rejects_a_broken_copy(
    report_case: ReportCase,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The validator really checks: a copy of the report with a hash value typed
    xsd:integer and a misspelt UCO property on a File is rejected, for both."""
    _validator()
    proc, out = report_case.report("case")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    h = next(n for n in doc["@graph"] if n["@type"] == "uco-types:Hash")
    h["uco-types:hashValue"] = {"@type": "xsd:integer", "@value": "42"}
    f = next(n for n in doc["@graph"] if n["@type"] == "uco-observable:File")
    f["uco-observable:fileNme"] = "x"
    bad = tmp_path / "broken.jsonld"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    code, stdout, stderr = _finish(_validate(bad))
    assert code == 1, stdout + stderr
    assert "Conforms: False" in stdout
    assert "Results (1):" in stdout
    assert "Value is not Literal with datatype xsd:hexBinary" in stdout
    assert h["@id"].removeprefix("kb:") in stdout
    assert "NonExistentCDOConceptWarning" in stderr
    assert "uco/observable/fileNme" in stderr
