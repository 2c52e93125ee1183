"""What each component of the local stack runs: its command line and its environment.

The emulators come from the Google Cloud CLI, the sandbox is `python -m sandbox` (or
`LEADRUN_SANDBOX_CMD`), the local Cloud Scheduler is `python -m leadrun.scheduler`, push loops
beside the emulator's two are `python -m leadrun.pusher`, and every function of
`common.topology.FUNCTIONS` runs under functions-framework on its own port.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common import topology
from leadrun.stack_config import (
    DEFAULT_SWEEP_EVERY_S,
    FIRESTORE,
    GOOGLE_LIMITS_ENV,
    HOST,
    OPERATOR_UIDS_ENV,
    PUBSUB,
    PUSHER,
    REPO_ROOT,
    SANDBOX,
    SCHEDULER,
    client_env,
)

# Push loops per subscription beside the emulator's two: as many as a function's threads
# (functions-framework runs 4 a core), so no delivery waits for a free loop locally.
DEFAULT_PUSH_LANES = 8


def sweep_every_s() -> float:
    """The local Cloud Scheduler's period (`LEADRUN_SWEEP_EVERY_S`)."""
    return float(os.environ.get("LEADRUN_SWEEP_EVERY_S", f"{DEFAULT_SWEEP_EVERY_S:g}"))


DEFAULT_SANDBOX_CMD: tuple[str, ...] = (
    "{python}",
    "-m",
    "sandbox",
    "--host",
    HOST,
    "--port",
    "{port}",
    "--project",
    "{project}",
)

# Keep gcloud quiet and offline: no prompts, no update checks, no usage reports.
_GCLOUD_ENV = {
    "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
}
# The emulators are JVMs started fresh with every stack (docs/decisions/0006): with the
# JVM's defaults, C2 compilation takes more CPU than the emulators' own work for a whole run, on
# two cores shared with everything else. C1 only and the serial collector halve their CPU.
DEFAULT_EMULATOR_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _emulator_env() -> dict[str, str]:
    """The environment of an emulator: gcloud's settings and the JVM options.

    LEADRUN_EMULATOR_JAVA_OPTS replaces the options (empty: the JVM's defaults); options already
    in JAVA_TOOL_OPTIONS come first, so ours win where both set the same flag.
    """
    options = os.environ.get("LEADRUN_EMULATOR_JAVA_OPTS", DEFAULT_EMULATOR_JAVA_OPTS)
    inherited = os.environ.get("JAVA_TOOL_OPTIONS", "")
    env = dict(_GCLOUD_ENV)
    combined = f"{inherited} {options}".strip()
    if combined:
        env["JAVA_TOOL_OPTIONS"] = combined
    return env


def ops_page_env(name: str, port_map: Mapping[str, int]) -> dict[str, str]:
    """The Operations page (diagnostics `/ops`) steers through Control from its own origin:
    diagnostics tells the page where Control is, and Control allows that one origin."""
    if name == "diagnostics":
        return {"LEADRUN_CONTROL_URL": f"http://{HOST}:{port_map['control']}/"}
    if name == "control":
        return {"LEADRUN_OPS_ORIGIN": f"http://{HOST}:{port_map['diagnostics']}"}
    return {}


@dataclass(frozen=True)
class Commands:
    """Builds each component's (command, environment overrides) for one stack."""

    gcloud: str
    python: str
    project: str
    state_dir: Path
    functions_dir: Path
    sandbox_template: tuple[str, ...]
    allowed_origins: str
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def command(self, name: str, port_map: Mapping[str, int]) -> tuple[list[str], dict[str, str]]:
        """What component `name` runs on `port_map[name]`, and what it adds to the environment."""
        port = port_map[name]
        if name == PUBSUB:
            return [
                self.gcloud,
                "beta",
                "emulators",
                "pubsub",
                "start",
                f"--host-port={HOST}:{port}",
                f"--project={self.project}",
                f"--data-dir={self.state_dir / 'pubsub-data'}",
            ], _emulator_env()
        if name == FIRESTORE:
            return [
                self.gcloud,
                "emulators",
                "firestore",
                "start",
                f"--host-port={HOST}:{port}",
            ], _emulator_env()
        if name == SANDBOX:
            values = {"python": self.python, "port": str(port), "project": self.project}
            return [part.format(**values) for part in self.sandbox_template], {
                "PYTHONPATH": str(REPO_ROOT),
                "GOOGLE_CLOUD_PROJECT": self.project,
                "PYTHONUNBUFFERED": "1",
            }
        if name == SCHEDULER:
            return self._helper(
                "leadrun.scheduler", port, port_map, "--every", f"{sweep_every_s():g}"
            )
        if name == PUSHER:
            lanes = os.environ.get("LEADRUN_PUSH_LANES", str(DEFAULT_PUSH_LANES))
            return self._helper("leadrun.pusher", port, port_map, "--lanes", lanes)
        spec = topology.function(name)
        return [
            self.python,
            "-m",
            "functions_framework",
            "--target",
            spec.target,
            "--source",
            str(self.functions_dir / spec.source_dir / "main.py"),
            "--signature-type",
            spec.signature,
            "--host",
            HOST,
            "--port",
            str(port),
        ], {
            **self.function_env(port_map),
            **ops_page_env(name, port_map),
            "K_SERVICE": name,
            "FUNCTION_TARGET": spec.target,
        }

    def _helper(
        self, module: str, port: int, port_map: Mapping[str, int], *options: str
    ) -> tuple[list[str], dict[str, str]]:
        """A helper process of `leadrun` (the local Cloud Scheduler, the push loops)."""
        command = [self.python, "-m", module, "--host", HOST, "--port", str(port)]
        return [*command, "--project", self.project, *options], {
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "PUBSUB_EMULATOR_HOST": f"{HOST}:{port_map[PUBSUB]}",
        }

    def function_env(self, port_map: Mapping[str, int]) -> dict[str, str]:
        """What every function's environment gets: the stack's addresses, then `extra_env`."""
        env = client_env(self.project, port_map)
        return {
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_EMULATOR_HOST": env["PUBSUB_EMULATOR_HOST"],
            "FIRESTORE_EMULATOR_HOST": env["FIRESTORE_EMULATOR_HOST"],
            "WORKSPACE_SANDBOX_URL": env["WORKSPACE_SANDBOX_URL"],
            "LEADRUN_GOOGLE_MODE": "sandbox",
            "LEADRUN_FIREBASE_CERTS_URL": env["LEADRUN_FIREBASE_CERTS_URL"],
            "LEADRUN_ALLOWED_ORIGINS": self.allowed_origins,
            # One sweeper tick keeps publishing what falls due until the next one comes.
            "LEADRUN_SWEEP_LOOP_S": f"{sweep_every_s():g}",
            **{k: v for k, v in os.environ.items() if k in (GOOGLE_LIMITS_ENV, OPERATOR_UIDS_ENV)},
            **self.extra_env,
        }
