"""Settings read from the environment once per process (see docs/architecture.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

GOOGLE_MODE_SANDBOX = "sandbox"
GOOGLE_MODE_WORKSPACE = "workspace"
GOOGLE_SECURETOKEN_CERTS_URL = (
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
)


@dataclass(frozen=True)
class Settings:
    """Everything a function needs to know about where it runs."""

    project: str
    google_mode: str
    sandbox_url: str | None
    delegation_sa: str | None
    certs_url: str
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    max_message_age_s: int = 7 * 24 * 3600
    lease_s: int = 120
    counter_shards: int = 8
    on_emulators: bool = False


def _split(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def settings_from(env: dict[str, str] | os._Environ[str]) -> Settings:
    """Build settings from an environment mapping; refuses combinations that would be unsafe."""
    project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or ""
    if not project:
        raise RuntimeError("GOOGLE_CLOUD_PROJECT is not set")
    on_emulators = bool(env.get("FIRESTORE_EMULATOR_HOST"))
    mode = env.get("LEADRUN_GOOGLE_MODE", GOOGLE_MODE_WORKSPACE)
    if mode not in (GOOGLE_MODE_SANDBOX, GOOGLE_MODE_WORKSPACE):
        raise RuntimeError(f"LEADRUN_GOOGLE_MODE must be sandbox or workspace, not {mode!r}")
    sandbox_url = env.get("WORKSPACE_SANDBOX_URL") or None
    if mode == GOOGLE_MODE_SANDBOX and not sandbox_url:
        raise RuntimeError("LEADRUN_GOOGLE_MODE=sandbox needs WORKSPACE_SANDBOX_URL")
    # The sandbox's signing keys are trusted only on the emulators: a production deployment
    # (no emulator) always verifies against Google's securetoken certificates.
    certs_url = GOOGLE_SECURETOKEN_CERTS_URL
    if on_emulators and env.get("LEADRUN_FIREBASE_CERTS_URL"):
        certs_url = env["LEADRUN_FIREBASE_CERTS_URL"]
    return Settings(
        project=project,
        google_mode=mode,
        sandbox_url=sandbox_url.rstrip("/") if sandbox_url else None,
        delegation_sa=env.get("LEADRUN_DELEGATION_SA") or None,
        certs_url=certs_url,
        allowed_origins=_split(env.get("LEADRUN_ALLOWED_ORIGINS", "")),
        max_message_age_s=int(env.get("LEADRUN_MAX_MESSAGE_AGE_S", str(7 * 24 * 3600))),
        lease_s=int(env.get("LEADRUN_LEASE_S", "120")),
        on_emulators=on_emulators,
    )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings of this process (read once)."""
    return settings_from(os.environ)
