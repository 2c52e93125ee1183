"""Assemble each deploy unit's exact upload: `python infra/package.py [--out build]`.

For every unit in `common.topology.FUNCTIONS` (functions/<unit>/) this writes
`<out>/<unit>/` with the unit's Python files and folders (diagnostics: the Operations page's
`ops/`), a copy of `common/` and a flat `requirements.txt` pinning the runtime requirements and
everything they pull in (from `constraints.txt`), plus
`<out>/<unit>.zip`, a byte-for-byte reproducible archive of that folder, which
`infra/deploy.sh upload` stores under its content hash.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import re
import shutil
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `common` importable
    sys.path.insert(0, str(ROOT))

from common import topology  # noqa: E402

# Fixed timestamp for every zip entry (the earliest a zip can hold) so equal trees give equal zips.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}


class PackagingError(Exception):
    """The requirements cannot be flattened into exact pins."""


@dataclass(frozen=True)
class Pin:
    """One `name==version` line."""

    name: str
    version: str

    @property
    def key(self) -> str:
        """The canonical (PEP 503) name."""
        return canonicalize_name(self.name)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def deploy_units() -> list[str]:
    """The deploy units (folders under functions/) that topology.FUNCTIONS names."""
    return sorted({spec.source_dir for spec in topology.FUNCTIONS})


def read_requirements(path: Path) -> list[Requirement]:
    """Requirements of a pip requirements file, following `-r` includes."""
    requirements: list[Requirement] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            included = line.split(maxsplit=1)[1]
            requirements += read_requirements((path.parent / included).resolve())
        elif line.startswith(("-c ", "--constraint ")):
            continue  # constraints come from the project's constraints.txt
        elif line.startswith("-"):
            raise PackagingError(f"{path}: unsupported option {line!r}")
        else:
            requirements.append(Requirement(line))
    return requirements


def read_pins(path: Path) -> dict[str, Pin]:
    """Canonical name => pin, for a file of `name==version` lines."""
    pins: dict[str, Pin] = {}
    for requirement in read_requirements(path):
        pin = exact_pin(requirement, path)
        pins[pin.key] = pin
    return pins


def exact_pin(requirement: Requirement, source: Path) -> Pin:
    """The `==` pin of a requirement, or an error naming the file."""
    match = re.fullmatch(r"==([^,*]+)", str(requirement.specifier))
    if match is None:
        raise PackagingError(f"{source}: {requirement} is not pinned with ==")
    return Pin(requirement.name, match.group(1))


def runtime_closure(roots: Iterable[Requirement]) -> set[str]:
    """Canonical names of the roots and everything they need on this Python (installed metadata)."""
    environment: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    needed: set[str] = set()
    queue: list[tuple[str, frozenset[str]]] = [
        (canonicalize_name(r.name), frozenset(r.extras))
        for r in roots
        if marker_holds(r, environment)
    ]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        needed.add(name)
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError as error:
            raise PackagingError(
                f"{name} is not installed here; the dependency closure is read from the installed "
                "metadata: install requirements-dev.txt with -c constraints.txt first"
            ) from error
        for line in requires:
            dependency = Requirement(line)
            if any(marker_holds(dependency, environment, extra) for extra in ("", *extras)):
                queue.append((canonicalize_name(dependency.name), frozenset(dependency.extras)))
    return needed


def marker_holds(requirement: Requirement, environment: dict[str, str], extra: str = "") -> bool:
    """Whether a requirement applies on this Python (the functions' runtime), given an extra."""
    if requirement.marker is None:
        return extra == ""
    return requirement.marker.evaluate({**environment, "extra": extra})


def flat_pins(roots: list[Requirement], constraints: dict[str, Pin], source: Path) -> list[Pin]:
    """Exact pins of the roots and their whole closure, taken from constraints.txt."""
    pins: dict[str, Pin] = {}
    for requirement in roots:
        key: str = canonicalize_name(requirement.name)
        if key not in constraints:
            raise PackagingError(f"{source}: {requirement.name} has no pin in constraints.txt")
        constrained = constraints[key]
        if str(requirement.specifier) and not requirement.specifier.contains(
            constrained.version, prereleases=True
        ):
            raise PackagingError(
                f"{source}: {requirement} disagrees with constraints.txt ({constrained})"
            )
        pins[key] = Pin(requirement.name, constrained.version)
    for key in sorted(runtime_closure(roots)):
        if key in pins:
            continue
        if key not in constraints:
            raise PackagingError(f"{key} is needed at runtime but has no pin in constraints.txt")
        pins[key] = constraints[key]
        installed = importlib.metadata.version(key)
        if installed != constraints[key].version:
            raise PackagingError(
                f"{key} {installed} is installed but constraints.txt pins "
                f"{constraints[key].version}: reinstall with -c constraints.txt so the dependency "
                "closure is the pinned one"
            )
    return sorted(pins.values(), key=lambda pin: pin.key)


def unit_requirements(root: Path, unit: str) -> tuple[list[Requirement], Path]:
    """The unit's own requirements.txt when it has one, else the project's runtime requirements."""
    own = root / "functions" / unit / "requirements.txt"
    source = own if own.exists() else root / "requirements.txt"
    return read_requirements(source), source


def copy_tree(source: Path, target: Path) -> None:
    """Copy a source tree without caches or bytecode."""
    shutil.copytree(
        source,
        target,
        ignore=lambda _dir, names: [
            n for n in names if n in SKIPPED_NAMES or Path(n).suffix in SKIPPED_SUFFIXES
        ],
    )


def write_zip(folder: Path, archive: Path) -> str:
    """Zip a folder reproducibly (sorted entries, fixed times and modes); return its sha256."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(info, path.read_bytes())
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def package_unit(root: Path, unit: str, out: Path, constraints: dict[str, Pin]) -> Path:
    """Write <out>/<unit>/ and <out>/<unit>.zip; return the folder."""
    unit_dir = root / "functions" / unit
    main = unit_dir / "main.py"
    if not main.exists():
        raise PackagingError(f"{main} does not exist")
    target = out / unit
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for module in sorted(unit_dir.glob("*.py")):
        shutil.copy2(module, target / module.name)
    folders = (p for p in unit_dir.iterdir() if p.is_dir() and p.name not in SKIPPED_NAMES)
    for folder in sorted(folders):
        copy_tree(folder, target / folder.name)  # files the unit serves (diagnostics: ops/)
    copy_tree(root / "common", target / "common")
    roots, source = unit_requirements(root, unit)
    pins = flat_pins(roots, constraints, source)
    header = (
        f"# Generated by infra/package.py from {source.relative_to(root)} and constraints.txt:\n"
        "# every package this function imports at runtime, pinned. Do not edit.\n"
    )
    (target / "requirements.txt").write_text(header + "".join(f"{pin}\n" for pin in pins))
    write_zip(target, out / f"{unit}.zip")
    return target


def package_all(root: Path, out: Path) -> list[Path]:
    """Package every deploy unit of the project at `root` into `out`."""
    constraints = read_pins(root / "constraints.txt")
    out.mkdir(parents=True, exist_ok=True)
    return [package_unit(root, unit, out, constraints) for unit in deploy_units()]


def main(argv: list[str] | None = None) -> int:
    """Command line: package every deploy unit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output folder")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        folders = package_all(args.root.resolve(), args.out.resolve())
    except PackagingError as error:
        print(f"package: {error}", file=sys.stderr)
        return 1
    for folder in folders:
        print(f"packaged {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
