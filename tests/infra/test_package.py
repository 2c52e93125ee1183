"""`make package` (infra/package.py): each build folder is exactly what its functions need."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from common import topology
from infra import package

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted({spec.source_dir for spec in topology.FUNCTIONS})
DEV_ONLY = {"pytest", "mypy", "ruff", "hypothesis", "playwright", "python-hcl2", "rich"}


def lead_sources_exist() -> bool:
    return all((ROOT / "functions" / unit / "main.py").exists() for unit in UNITS)


def stand_in_project(base: Path) -> Path:
    """A copy of the project whose units are stand-ins importing what real functions import."""
    project = base / "project"
    project.mkdir()
    for name in ("requirements.txt", "constraints.txt"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(
        ROOT / "common", project / "common", ignore=shutil.ignore_patterns("__pycache__")
    )
    for unit in UNITS:
        folder = project / "functions" / unit
        folder.mkdir(parents=True)
        targets = [spec.target for spec in topology.FUNCTIONS if spec.source_dir == unit]
        body = "\n".join(f"def {target}(request):\n    return 'ok'\n" for target in targets)
        (folder / "main.py").write_text(
            "import email_validator\nimport functions_framework\nimport google.auth\n"
            "import googleapiclient.discovery\nimport pydantic\nimport requests\n"
            "from google.cloud import firestore, pubsub_v1\n\nfrom common import topology\n\n"
            + body
        )
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real project once the lead's functions exist, else a stand-in copy."""
    if lead_sources_exist():
        return ROOT
    return stand_in_project(tmp_path_factory.mktemp("stand-in"))


@pytest.fixture(scope="module")
def build(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    assert package.main(["--root", str(project), "--out", str(out)]) == 0
    return out


def pins(requirements: Path) -> dict[str, str]:
    found = {}
    for line in requirements.read_text().splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            assert str(requirement.specifier).startswith("=="), line
            found[canonicalize_name(requirement.name)] = str(requirement.specifier)[2:]
    return found


def test_one_build_folder_per_deploy_unit(build: Path) -> None:
    assert sorted(p.name for p in build.iterdir() if p.is_dir()) == UNITS
    for unit in UNITS:
        folder = build / unit
        assert (folder / "main.py").is_file()
        assert (folder / "common" / "topology.py").is_file()
        assert not list(folder.rglob("__pycache__")), unit
        assert (build / f"{unit}.zip").is_file()


def test_every_entry_point_is_defined_in_its_unit(build: Path) -> None:
    for spec in topology.FUNCTIONS:
        tree = ast.parse((build / spec.source_dir / "main.py").read_text())
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        } | {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        assert spec.target in defined, f"{spec.source_dir}/main.py lacks {spec.target}"


def test_requirements_are_flat_exact_pins_from_constraints(build: Path) -> None:
    constraints = pins(ROOT / "constraints.txt")
    runtime = pins(ROOT / "requirements.txt")
    for unit in UNITS:
        own = ROOT / "functions" / unit / "requirements.txt"
        roots = pins(own) if own.exists() and "-r" not in own.read_text() else runtime
        flat = pins(build / unit / "requirements.txt")
        assert set(roots) <= set(flat), unit
        for name, version in flat.items():
            assert constraints[name] == version, f"{unit}: {name}=={version}"
        assert not DEV_ONLY & set(flat), f"{unit} ships dev tools {DEV_ONLY & set(flat)}"
        # The transitive closure is in: functions-framework runs on Flask and gunicorn.
        assert {"flask", "gunicorn", "protobuf", "grpcio"} <= set(flat), unit


def test_zips_are_reproducible(project: Path, build: Path, tmp_path: Path) -> None:
    assert package.main(["--root", str(project), "--out", str(tmp_path)]) == 0
    for unit in UNITS:
        first = hashlib.sha256((build / f"{unit}.zip").read_bytes()).hexdigest()
        second = hashlib.sha256((tmp_path / f"{unit}.zip").read_bytes()).hexdigest()
        assert first == second, unit


def test_missing_pin_fails_packaging(project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(
        project, broken, ignore=shutil.ignore_patterns(".venv", "build", ".git", "__pycache__")
    )
    constraints = broken / "constraints.txt"
    constraints.write_text(
        "".join(
            line + "\n"
            for line in constraints.read_text().splitlines()
            if not line.startswith("protobuf==")
        )
    )
    assert package.main(["--root", str(broken), "--out", str(tmp_path / "out")]) == 1


def install_and_import(folder: Path, environments: Path) -> str:
    """Install a build folder's requirements into a fresh venv and import its main; '' if fine."""
    env_dir = environments / folder.name
    # Symlinks, as `python -m venv` makes on Linux: venvs built in threads beside each other
    # must not copy the interpreter, or a subprocess forked meanwhile holds the copy open for
    # writing and running it fails with "Text file busy" (seen once in CI).
    venv.EnvBuilder(with_pip=True, clear=True, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        return f"{folder.name}: pip install failed\n{install.stdout}\n{install.stderr}"
    targets = [spec.target for spec in topology.FUNCTIONS if spec.source_dir == folder.name]
    check = "import main\n" + "".join(f"assert callable(main.{t}), {t!r}\n" for t in targets)
    clean_env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    imported = subprocess.run(
        [str(python), "-c", check],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env=clean_env,
    )
    if imported.returncode != 0:
        return f"{folder.name}: import main failed\n{imported.stderr}"
    return ""


@pytest.mark.slow
def test_each_build_folder_imports_in_a_clean_virtualenv(build: Path, tmp_path: Path) -> None:
    """A dependency missing from a unit's requirements.txt fails here, not in production."""
    assert sys.version_info[:2] == (3, 11), "the functions run on python311"
    with ThreadPoolExecutor(max_workers=len(UNITS)) as pool:
        failures = [
            f for f in pool.map(lambda u: install_and_import(build / u, tmp_path), UNITS) if f
        ]
    assert not failures, "\n\n".join(failures)
