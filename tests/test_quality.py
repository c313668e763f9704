"""The code standards, enforced: mypy --strict on the library and the CLI, ruff
everywhere, and the library never imports click or tqdm (the CLI is thin)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_library_and_cli() -> None:
    """Both packages by their installed names: the CLI folder cli/ is custody_cli,
    resolved through pyproject.toml's mypy_path (typecheck/custody_cli links to
    cli/), so its imports and click's typed decorators are checked, not Any."""
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "-p", "custody", "-p", "custody_cli"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cli_modules = len(list((ROOT / "cli").glob("*.py")))
    library_modules = len(list((ROOT / "custody").rglob("*.py")))
    assert f"in {cli_modules + library_modules} source files" in proc.stdout, proc.stdout


def test_mypy_config_checks_both_packages() -> None:
    """Plain ``mypy`` (pyproject.toml's ``files``) checks the CLI as well."""
    pytest.importorskip("mypy")
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (ROOT / "typecheck" / "custody_cli").resolve() == (ROOT / "cli").resolve()


def test_ruff_clean() -> None:
    pytest.importorskip("ruff")
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "custody", "cli", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_library_never_imports_click_or_tqdm() -> None:
    for path in (ROOT / "custody").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in {"click", "tqdm", "custody_cli"}, f"{path}: {n}"


# Imported only by the commands that need them: each would cost every command's
# start-up (custody --help included), measured in benchmarks/field.py.
NOT_AT_STARTUP = (
    "cryptography.x509",
    "custody.selftest",
    "custody.timestamp",
    "fpdf",
    "http.client",
    "jsonschema",
    "magic",
    "numpy",
    "pandas",
    "sqlite_utils",
    "tqdm",
    "urllib.request",
)


def test_cli_startup_imports_nothing_heavy() -> None:
    code = (
        "import sys, custody_cli.main\n"
        f"print(','.join(m for m in {NOT_AT_STARTUP!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_collect_does_not_load_sqlite_utils(tmp_path: Path) -> None:
    """Collecting needs only sqlite3: sqlite-utils (import and plugin loading, about
    0.1 s) is for the listings, so the ledger makes its handle on first use."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey\n"
        "from custody.collect import collect\n"
        "from custody.keys import Signer\n"
        "from custody.ledger import Ledger\n"
        "d = Path(sys.argv[1])\n"
        "(d / 'f').write_bytes(b'x')\n"
        "led = Ledger.create(d / 'case', 'Q-1', 'q')\n"
        "s = Signer(Ed25519PrivateKey.generate(), 'Q', 'q')\n"
        "collect(led, s, [str(d / 'f')], reason='r', algorithms=['sha256'], selftest=False)\n"
        "print('sqlite_utils' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"
