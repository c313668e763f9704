"""Evidence bundles for counsel: a BagIt bag (RFC 8493) carrying the payload, the
signed events about the exported items, a signed checkpoint and inclusion proofs.

Layout (see docs/bundle-format.md)::

    bagit.txt  bag-info.txt  manifest-sha256.txt  manifest-sha512.txt
    tagmanifest-sha256.txt
    data/ITEM-N/<original file name>         payload (mapped name if not representable)
    custody/bundle.json     schema version, case, items and where their bytes are
    custody/events.jsonl    the disclosed events, one JSON object a line
    custody/checkpoint.txt  a C2SP signed checkpoint of the whole ledger
    custody/proofs.json     an RFC 9162 inclusion proof of every disclosed event
    custody/keys.json       the public keys of everyone who signed

Verification never extracts anything: it reads a folder, a tar (optionally gzip)
or a zip in place, refusing hostile entries before reading any content.

The modules:

* :mod:`custody.bundle.archive`: reading a folder, tar or zip in place, and the
  limits on hostile input (unsafe names, links, bombs, sizes);
* :mod:`custody.bundle.shapes`: the bundle's documents and their schemas;
* :mod:`custody.bundle.export`: writing a bundle;
* :mod:`custody.bundle.verify`: verifying one offline (payload hashed in worker
  processes for a large folder: patch its tuning constants there, not here);
* :mod:`custody.bundle.importer`: merging a verified bundle into a case.
"""

from __future__ import annotations

from custody.bundle.archive import (
    CHUNK,
    MAX_JSON_DEPTH,
    MAX_RATIO,
    MAX_TAG_FILE,
    MAX_TOTAL,
    HostileBundleError,
    open_source,
    path_is_dangerous,
)
from custody.bundle.archive import _Source as _Source
from custody.bundle.archive import _strip_top as _strip_top
from custody.bundle.export import KEY_EVENTS, ExportResult, export_bundle
from custody.bundle.importer import IMPORT_EVENT, ImportResult, import_bundle
from custody.bundle.shapes import EXPORT_EVENT, SCHEMA_VERSION, TIMESTAMP_FILE
from custody.bundle.shapes import _item_shape as _item_shape
from custody.bundle.shapes import _json as _json
from custody.bundle.shapes import _manifest as _manifest
from custody.bundle.shapes import _payload_name as _payload_name
from custody.bundle.shapes import _proofs_shape as _proofs_shape
from custody.bundle.verify import BundleFinding, BundleReport, verify_bundle
from custody.bundle.verify import _check_checkpoint_and_proofs as _check_checkpoint_and_proofs
from custody.bundle.verify import _events as _events

__all__ = [
    "CHUNK",
    "EXPORT_EVENT",
    "IMPORT_EVENT",
    "KEY_EVENTS",
    "MAX_JSON_DEPTH",
    "MAX_RATIO",
    "MAX_TAG_FILE",
    "MAX_TOTAL",
    "SCHEMA_VERSION",
    "TIMESTAMP_FILE",
    "BundleFinding",
    "BundleReport",
    "ExportResult",
    "HostileBundleError",
    "ImportResult",
    "export_bundle",
    "import_bundle",
    "open_source",
    "path_is_dangerous",
    "verify_bundle",
]
