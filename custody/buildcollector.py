"""The collector that runs from the USB drive (``custody build-collector``).

One zipapp file holds custody's own code and the wheels of every dependency for
CPython 3.11, 3.12 and 3.13 on manylinux x86_64 and aarch64.  Run with the host's
``python3`` (nothing installed, ``python3 -I -S`` works), its ``__main__`` (the
:data:`BOOTSTRAP` below, standard library only):

1. hashes the zipapp itself (SHA-256): the digest every ``collection.start`` the
   run writes records (``collector``), with its path and size;
2. picks, per dependency, the wheel that fits this interpreter (CPython version,
   machine, glibc version) and unpacks it, with custody's own code, into
   ``.custody-collector/<first 16 hex of the digest>/<cpXY>-<machine>/`` NEXT TO
   THE ZIPAPP, on the collector's media: native modules cannot be imported from
   inside a zip, and nothing is written to the host's disk (no temporary
   directory, no user cache);
3. checks every unpacked file against the SHA-256 the build recorded for it in the
   zipapp's manifest (a file changed on the media since is not used: the bundle is
   unpacked again into a fresh folder beside it), then runs custody's CLI.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody import __version__
from custody.errors import OperationalError, UsageError

#: set by the collector zipapp's ``__main__``: the zipapp's path, SHA-256 and size
RUNNING_FROM: str | None = None
_identity: dict[str, Any] | None = None

PYTHONS = ("3.11", "3.12", "3.13")
MACHINES = ("x86_64", "aarch64")
#: manylinux tags accepted, oldest glibc first (pip picks the best one it finds)
MANYLINUX = ("manylinux2014", "manylinux_2_17", "manylinux_2_28")
ZIP_TIME = (2026, 1, 1, 0, 0, 0)  # fixed member times: the same inputs give the same file
MANIFEST = "collector/manifest.json"


def running_from(path: str, sha256: str, size: int) -> None:
    """Called by the zipapp's bootstrap with the digest it computed at start."""
    global RUNNING_FROM, _identity
    RUNNING_FROM = path
    raw = os.fsencode(os.path.abspath(path))
    _identity = {
        "path": {"hex": raw.hex(), "display": raw.decode("utf-8", "backslashreplace")},
        "sha256": sha256,
        "size": size,
    }


def collector_fields() -> dict[str, Any]:
    """``{"collector": {...}}`` for a ``collection.start`` when custody runs from a
    collector zipapp (its path, SHA-256 and size, hashed by this process when it
    started); ``{}`` otherwise."""
    if RUNNING_FROM is None or _identity is None:
        return {}
    return {"collector": dict(_identity)}


# -- building -----------------------------------------------------------------------


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "custody" / "collector-wheels"


def requirements() -> list[str]:
    """custody's run-time dependencies, as its installed metadata states them."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("custody") or []
    except PackageNotFoundError as e:
        raise OperationalError("custody's package metadata is missing: install it first") from e
    return [r for r in reqs if "extra ==" not in r]


class IndexUnreachableError(OperationalError):
    """The wheels are neither cached nor downloadable (exit 3)."""


_WHEEL = re.compile(r"[A-Za-z0-9_.+-]+\.whl")


def _pip_download(dest: Path, target: str, machine: str, reqs: Sequence[str], offline: bool) -> str:
    py = target.replace(".", "")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        "--find-links",
        str(dest),
        "--only-binary=:all:",
        "--python-version",
        target,
        "--implementation",
        "cp",
        "--abi",
        f"cp{py}",
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for tag in MANYLINUX:
        cmd += ["--platform", f"{tag}_{machine}"]
    if offline:
        cmd.append("--no-index")
    cmd += list(reqs)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise IndexUnreachableError(f"cannot get the wheels for CPython {target} {machine}: {tail}")
    return proc.stdout


def fetch_wheels(
    cache: Path,
    reqs: Sequence[str],
    *,
    pythons: Sequence[str] = PYTHONS,
    machines: Sequence[str] = MACHINES,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Every wheel the targets need: those an earlier fetch of the same requirements
    and targets listed (``lock-*.json`` in ``cache``, each wheel's SHA-256 checked),
    else pip's choice from ``cache`` offline, else from the configured package index."""
    cache.mkdir(parents=True, exist_ok=True)
    key = json.dumps([sorted(reqs), list(pythons), list(machines), list(MANYLINUX)])
    lock = cache / f"lock-{_sha(key.encode())[:16]}.json"
    try:
        listed = json.loads(lock.read_text())
        paths = [cache / name for name in sorted(listed)]
        if all(_sha(p.read_bytes()) == listed[p.name] for p in paths):
            return paths
    except (OSError, ValueError, TypeError, AttributeError):
        pass  # no lock yet, or a wheel changed: ask pip
    chosen: dict[str, Path] = {}
    for target in pythons:
        for machine in machines:
            if progress is not None:
                progress(f"wheels for CPython {target} {machine}")
            try:
                out = _pip_download(cache, target, machine, reqs, offline=True)
            except IndexUnreachableError:
                out = _pip_download(cache, target, machine, reqs, offline=False)
            names = {m.group(0).rsplit("/", 1)[-1] for m in _WHEEL.finditer(out)}
            for n in names:
                if (cache / n).is_file():
                    chosen[n] = cache / n
    found = [chosen[n] for n in sorted(chosen)]
    lock.write_text(json.dumps({p.name: _sha(p.read_bytes()) for p in found}, indent=1))
    return found


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise OperationalError(f"cannot find the package {name} to put in the collector")
    return Path(next(iter(spec.submodule_search_locations)))


def _own_files() -> Iterator[tuple[str, bytes]]:
    """custody's own code (and schemas) as it is installed here, by import name."""
    roots = [
        ("custody", _package_dir("custody")),
        ("custody_cli", _package_dir("custody_cli")),
        ("custody/schemas", _package_dir("custody.schemas")),
    ]
    for prefix, root in roots:
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root)
            if not p.is_file() or "__pycache__" in rel.parts or p.suffix == ".pyc":
                continue
            if prefix == "custody" and rel.parts[0] == "schemas":
                continue  # from custody.schemas' own location
            yield f"{prefix}/{rel.as_posix()}", p.read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class BuildResult:
    path: Path
    sha256: str
    size: int
    wheels: list[str]


def _wheel_members(whl: bytes) -> dict[str, str]:
    """name -> sha256 of each file a wheel unpacks to (``.data/purelib`` and
    ``platlib`` mapped to the top, other ``.data`` parts left out)."""
    out: dict[str, str] = {}
    with zipfile.ZipFile(io.BytesIO(whl)) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            name = _wheel_target(info.filename)
            if name is not None:
                out[name] = _sha(z.read(info))
    return out


def _wheel_target(name: str) -> str | None:
    parts = name.split("/")
    if not parts or ".." in parts or name.startswith("/"):
        return None
    if parts[0].endswith(".data"):
        if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None
    return name


def build_collector(
    out: Path,
    *,
    cache: Path | None = None,
    pythons: Sequence[str] = PYTHONS,
    machines: Sequence[str] = MACHINES,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Write the collector zipapp to ``out`` (mode 0755; never over an existing file)."""
    if out.exists() or out.is_symlink():
        raise UsageError(f"{out} exists: the collector is never written over a file")
    if not out.parent.is_dir():
        raise UsageError(f"no such directory: {out.parent}")
    wheels = fetch_wheels(
        cache or default_cache(),
        requirements(),
        pythons=pythons,
        machines=machines,
        progress=progress,
    )
    manifest: dict[str, Any] = {
        "format": 1,
        "custody": __version__,
        "pythons": list(pythons),
        "machines": list(machines),
        "own": {},
        "wheels": [],
    }
    own = list(_own_files())
    manifest["own"] = {name: _sha(data) for name, data in own}
    blobs: list[tuple[str, bytes]] = []
    for w in wheels:
        data = w.read_bytes()
        manifest["wheels"].append(
            {"file": f"wheels/{w.name}", "sha256": _sha(data), "files": _wheel_members(data)}
        )
        blobs.append((f"collector/wheels/{w.name}", data))
    try:
        f = open(out, "xb")
    except FileExistsError as e:
        raise UsageError(f"{out} exists: the collector is never written over a file") from e
    try:
        with f:
            f.write(b"#!/usr/bin/env python3\n")
            with zipfile.ZipFile(f, "w") as z:

                def put(name: str, data: bytes, compress: int) -> None:
                    info = zipfile.ZipInfo(name, ZIP_TIME)
                    info.compress_type = compress
                    info.external_attr = 0o644 << 16
                    z.writestr(info, data)

                put("__main__.py", BOOTSTRAP.encode(), zipfile.ZIP_DEFLATED)
                put(MANIFEST, json.dumps(manifest, sort_keys=True).encode(), zipfile.ZIP_DEFLATED)
                for name, data in own:
                    put(f"collector/own/{name}", data, zipfile.ZIP_DEFLATED)
                for name, data in blobs:
                    put(name, data, zipfile.ZIP_STORED)  # wheels are compressed already
        os.chmod(out, 0o755)  # noqa: S103 - an executable, with no secret in it
    except BaseException:
        out.unlink(missing_ok=True)  # the half-written file this call created
        raise
    data = out.read_bytes()
    return BuildResult(out, _sha(data), len(data), [w.name for w in wheels])


# -- the zipapp's __main__ (standard library only; runs on the host's python3) -------

BOOTSTRAP = r'''"""custody collector: unpack onto the collector's media, then run custody."""
import hashlib
import io
import json
import os
import platform
import re
import sys
import zipfile

SUPPORTED = ("3.11", "3.12", "3.13")


def fail(msg, code=3):
    sys.stderr.write("custody: error: " + msg + "\n")
    sys.exit(code)


def glibc():
    try:
        name, ver = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = ver.split(".")[:2]
        return (int(major), int(minor))
    except (ValueError, OSError, AttributeError):
        return None


MACHINE = {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
OLD = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def platform_ok(tag, machine, libc):
    if tag == "any":
        return (0, 0)
    m = re.match(r"^(manylinux1|manylinux2010|manylinux2014|manylinux_(\d+)_(\d+))_(.+)$", tag)
    if not m or m.group(4) != machine or libc is None:
        return None
    need = OLD.get(m.group(1)) or (int(m.group(2)), int(m.group(3)))
    return need if libc >= need else None


def score(filename, py, machine, libc):
    """How well a wheel fits this interpreter (None: it does not)."""
    parts = filename[:-4].split("-")
    pytags, abis, plats = parts[-3].split("."), parts[-2].split("."), parts[-1].split(".")
    best = None
    for p in pytags:
        for a in abis:
            if a == "none" and p in ("py3", "py2.py3") or p == "py3":
                rank = 0
            elif a == "cp" + py and p == "cp" + py:
                rank = 2
            elif a == "abi3" and p.startswith("cp") and p[2:].isdigit() and int(p[2:]) <= int(py):
                rank = 1
            else:
                continue
            for t in plats:
                ok = platform_ok(t, machine, libc)
                if ok is not None:
                    cand = (rank, ok)
                    best = cand if best is None or cand > best else best
    return best


def dist_name(filename):
    return re.sub(r"[-_.]+", "_", filename.split("-")[0]).lower()


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unpack_ok(root, expected):
    """Every file the manifest names, with its digest, and no other file (a module
    or cached bytecode added on the media would run)."""
    for d, _dirs, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
            if rel not in expected:
                return False
    for name, digest in expected.items():
        p = os.path.join(root, name)
        try:
            if sha_file(p) != digest:
                return False
        except OSError:
            return False
    return True


def main():
    here = os.path.abspath(os.path.dirname(__file__))  # the zipapp itself
    py = "%d%d" % sys.version_info[:2]
    if "%d.%d" % sys.version_info[:2] not in SUPPORTED or sys.implementation.name != "cpython":
        fail("this collector runs on CPython " + ", ".join(SUPPORTED) + "; this is "
             + sys.implementation.name + " " + platform.python_version())
    machine = MACHINE.get(platform.machine().lower())
    libc = glibc()
    if machine is None or libc is None:
        fail("this collector runs on Linux x86_64 or aarch64 with glibc; this is "
             + platform.system() + " " + platform.machine())
    h = hashlib.sha256()
    size = 0
    with open(here, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    digest = h.hexdigest()
    with zipfile.ZipFile(here) as z:
        manifest = json.loads(z.read("collector/manifest.json"))
        picked = {}
        for w in manifest["wheels"]:
            name = w["file"].rsplit("/", 1)[-1]
            s = score(name, py, machine, libc)
            if s is None:
                continue
            d = dist_name(name)
            if d not in picked or s > picked[d][0]:
                picked[d] = (s, w)
        needed = {dist_name(w["file"].rsplit("/", 1)[-1]) for w in manifest["wheels"]}
        missing = sorted(needed - set(picked))
        if missing:
            fail("this collector has no wheel of " + ", ".join(missing) + " for CPython "
                 + "%d.%d" % sys.version_info[:2] + " on " + machine + " glibc %d.%d" % libc)
        expected = dict(manifest["own"])
        for _, w in picked.values():
            expected.update(w["files"])
        base = os.path.join(os.path.dirname(here), ".custody-collector", digest[:16])
        root = os.path.join(base, "cp%s-%s" % (py, machine))
        n = 0
        while os.path.isdir(root) and not unpack_ok(root, expected):
            n += 1  # changed on the media since: never used, unpacked afresh beside it
            root = os.path.join(base, "cp%s-%s.%d" % (py, machine, n))
        if not os.path.isdir(root):
            work = root + ".partial-%d" % os.getpid()
            try:
                os.makedirs(work, 0o700)
                for name in z.namelist():
                    if name.startswith("collector/own/"):
                        target = name[len("collector/own/"):]
                        write(work, target, z.read(name))
                for _, w in picked.values():
                    with zipfile.ZipFile(io.BytesIO(z.read("collector/" + w["file"]))) as wz:
                        for info in wz.infolist():
                            target = wheel_target(info.filename)
                            if target is not None and not info.is_dir():
                                write(work, target, wz.read(info))
                os.rename(work, root)
            except OSError as e:
                fail("cannot unpack the collector's modules next to it in "
                     + os.path.dirname(root) + " (" + (e.strerror or str(e)) + "): run it from"
                     " writable media; it never unpacks onto the host's disk")
            if not unpack_ok(root, expected):
                fail("the modules unpacked in " + root + " do not match the collector's manifest")
    sys.path[:0] = [root]
    sys.dont_write_bytecode = True  # the folder holds the manifest's files alone
    import custody.buildcollector as bc
    bc.running_from(here, digest, size)
    from custody_cli.main import main as custody_main
    sys.argv[0] = "custody"
    custody_main()


def wheel_target(name):
    parts = name.split("/")
    if ".." in parts or name.startswith("/"):
        return None
    if parts[0].endswith(".data"):
        if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None
    return name


def write(root, name, data):
    path = os.path.join(root, *name.split("/"))
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    with open(path, "xb") as f:
        f.write(data)
    if path.endswith(".so") or ".so." in path:
        os.chmod(path, 0o700)


main()
'''
