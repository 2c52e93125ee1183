"""Offline checks of the pipelines: they parse; every script and make target they call exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "cloudbuild.yaml"
ROLLBACK = ROOT / "infra" / "cloudbuild-rollback.yaml"
SCRIPTS = [ROOT / "infra" / "deploy.sh", ROOT / "infra" / "ci.sh"]
# Cloud Build's own substitutions (always defined).
BUILT_IN = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "SHORT_SHA",
    "REVISION_ID",
    "BRANCH_NAME",
    "TAG_NAME",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "SERVICE_ACCOUNT",
    "SERVICE_ACCOUNT_EMAIL",
}


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict) and document.get("steps"), f"{path} has no steps"
    return document


def make_targets() -> set[str]:
    makefile = ROOT / "Makefile"
    assert makefile.exists(), (
        "Makefile is missing (the pipeline runs make lint/typecheck/test/package)"
    )
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_./%-]+(?:[ \t]+[A-Za-z0-9_./%-]+)*)[ \t]*:(?![=:])", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def step_commands(step: dict[str, Any]) -> list[str]:
    """The command line a step runs: entrypoint + args."""
    return [step.get("entrypoint", ""), *[str(a) for a in step.get("args", [])]]


def called_scripts(document: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(script path, its arguments) for every step that runs a repository script."""
    calls = []
    for step in document["steps"]:
        command = step_commands(step)
        for index, word in enumerate(command):
            if word.endswith(".sh"):
                calls.append((word, command[index + 1 :]))
                break
    return calls


@pytest.mark.parametrize("path", [PIPELINE, ROLLBACK], ids=lambda p: p.name)
def test_pipeline_parses_and_declares_its_substitutions(path: Path) -> None:
    document = load(path)
    declared = set(document["substitutions"])
    assert {"_PROJECT_ID", "_REGION", "_ENV"} <= declared
    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", path.read_text().split("steps:", 1)[1]))
    assert used <= declared | BUILT_IN, (
        f"undeclared substitutions {sorted(used - declared - BUILT_IN)}"
    )
    ids = [step["id"] for step in document["steps"]]
    assert len(ids) == len(set(ids))
    for step in document["steps"]:
        assert step.get("name"), step
        # Steps run in order: no step may start before the one above it finished.
        assert "waitFor" not in step, step["id"]


@pytest.mark.parametrize("path", [PIPELINE, ROLLBACK], ids=lambda p: p.name)
def test_every_script_the_pipeline_calls_exists(path: Path) -> None:
    calls = called_scripts(load(path))
    assert calls
    for script, args in calls:
        assert (ROOT / script).is_file(), script
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"
        if script == "infra/deploy.sh":
            assert args[0] in {"upload", "fetch", "apply"}
            assert f"  {args[0]})" in (ROOT / script).read_text()


def test_pipeline_lints_typechecks_tests_packages_then_deploys() -> None:
    calls = called_scripts(load(PIPELINE))
    assert calls == [
        ("infra/ci.sh", ["lint"]),
        ("infra/ci.sh", ["typecheck"]),
        ("infra/ci.sh", ["test"]),
        ("infra/ci.sh", ["package"]),
        ("infra/deploy.sh", ["upload"]),
        ("infra/deploy.sh", ["apply"]),
    ]


def test_every_make_target_the_pipeline_calls_exists() -> None:
    targets = make_targets()
    for script, args in called_scripts(load(PIPELINE)):
        if script == "infra/ci.sh":
            assert args[0] in targets, f"make {args[0]} is not a Makefile target"


def test_deploy_steps_get_the_environment_deploy_sh_reads() -> None:
    steps = {step["id"]: step for step in load(PIPELINE)["steps"]}
    env = {item.split("=", 1)[0] for item in steps["deploy"]["env"]}
    assert {"PROJECT_ID", "REGION", "ENV", "DEPLOY_BUCKET"} <= env
    assert {"PROJECT_ID", "DEPLOY_BUCKET"} <= {
        item.split("=", 1)[0] for item in steps["upload"]["env"]
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_valid_posix_shell(script: Path) -> None:
    shell = shutil.which("dash") or shutil.which("sh")
    assert shell is not None
    result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
