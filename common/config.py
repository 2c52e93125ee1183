"""Settings read from the environment once per process (see docs/architecture.md)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

from common import topology
from common.pacing import Limits, LimitsError, parse_limits

GOOGLE_MODE_SANDBOX = "sandbox"
GOOGLE_MODE_WORKSPACE = "workspace"
GOOGLE_SECURETOKEN_CERTS_URL = (
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
)


@dataclass(frozen=True)
class HostAllowlist:
    """The Workspace users a request may name as its host (`LEADRUN_WORKSPACE_SUBJECTS`).

    Under domain-wide delegation the functions can act as *any* user of the domain, so the host of
    a request (`senderEmail`, whose mailbox and Drive are used, and `calendarId`) must be one the
    operators listed. Entries are addresses (`host@example.com`) or whole domains (`example.com`
    or `@example.com`), compared case-insensitively. `entries` is None when nothing is configured:
    then every host is allowed only if `open_when_unset` (the sandbox, where nobody real can be
    impersonated) and refused otherwise (fail closed).
    """

    entries: frozenset[str] | None
    open_when_unset: bool

    @classmethod
    def parse(cls, raw: str | None, *, open_when_unset: bool) -> HostAllowlist:
        """From the comma-separated variable; empty or unset means not configured."""
        parts = (part.strip().lower() for part in (raw or "").split(","))
        entries = frozenset(part.removeprefix("@") for part in parts if part)
        return cls(entries or None, open_when_unset)

    def allows(self, address: str) -> bool:
        """Whether the functions may act as (or on the calendar of) `address`."""
        if self.entries is None:
            return self.open_when_unset
        local, at, domain = address.strip().lower().rpartition("@")
        if not (at and local and domain):
            return False  # not an address: neither listed nor in a listed domain
        return f"{local}@{domain}" in self.entries or domain in self.entries

    def refusal(self, calendar_id: str, sender_email: str) -> tuple[str, str] | None:
        """`(field, message)` when a host may not be used, else None."""
        if self.entries is None and not self.open_when_unset:
            return (
                "host",
                "no host is allowed: LEADRUN_WORKSPACE_SUBJECTS is not configured on this "
                "deployment (ask an operator to list the Workspace users it may act as)",
            )
        if not self.allows(sender_email):
            return ("host.senderEmail", "this host is not one this deployment may act as")
        # `primary` is the impersonated sender's own calendar.
        if calendar_id != "primary" and not self.allows(calendar_id):
            return ("host.calendarId", "this calendar is not one this deployment may act on")
        return None


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
    sweep_stale_s: int = topology.SWEEP_STALE_S
    counter_shards: int = 8
    on_emulators: bool = False
    hosts: HostAllowlist = field(default_factory=lambda: HostAllowlist(None, open_when_unset=False))
    google_limits: Limits = field(default_factory=lambda: parse_limits(None))
    sweep_loop_s: float = topology.SWEEP_LOOP_S  # how long a sweeper tick resumes what falls due
    search_settle_s: float = 600.0  # how long Gmail's search may lag behind what was made
    # Firebase uids that may steer and read any run, not only their own (`LEADRUN_OPERATOR_UIDS`,
    # docs/decisions/0014). Empty unless configured: then nobody can act on another's run.
    operator_uids: frozenset[str] = field(default_factory=frozenset)
    # The Operations page (diagnostics `/ops`): where it steers (`LEADRUN_CONTROL_URL`) and the
    # Firebase web config it signs in with (`LEADRUN_FIREBASE_API_KEY`, `..._AUTH_DOMAIN`).
    control_url: str | None = None
    firebase_api_key: str | None = None
    firebase_auth_domain: str | None = None


def _split(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def _origins(value: str) -> frozenset[str]:
    """CORS origins, each exactly `scheme://host[:port]`: no wildcard, no `null`, no path."""
    origins = frozenset(origin.lower() for origin in _split(value))
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise RuntimeError(
                f"LEADRUN_ALLOWED_ORIGINS: {origin!r} is not an origin like https://app.example.com"
                " (wildcards and null are never allowed)"
            )
    return origins


def _allowed_origins(env: dict[str, str] | os._Environ[str]) -> frozenset[str]:
    """`LEADRUN_ALLOWED_ORIGINS`, and the Operations page's own origin (`LEADRUN_OPS_ORIGIN`,
    set on the functions the page calls across origins: Control)."""
    allowed = _origins(env.get("LEADRUN_ALLOWED_ORIGINS", ""))
    ops = _origins(env.get("LEADRUN_OPS_ORIGIN", ""))
    if len(ops) > 1:
        raise RuntimeError("LEADRUN_OPS_ORIGIN: one origin, the page's own")
    return allowed | ops


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
        allowed_origins=_allowed_origins(env),
        max_message_age_s=int(env.get("LEADRUN_MAX_MESSAGE_AGE_S", str(7 * 24 * 3600))),
        lease_s=int(env.get("LEADRUN_LEASE_S", "120")),
        sweep_stale_s=int(env.get("LEADRUN_SWEEP_STALE_S", str(topology.SWEEP_STALE_S))),
        on_emulators=on_emulators,
        google_limits=_limits(env.get("LEADRUN_GOOGLE_LIMITS")),
        sweep_loop_s=float(env.get("LEADRUN_SWEEP_LOOP_S", str(topology.SWEEP_LOOP_S))),
        search_settle_s=float(env.get("LEADRUN_SEARCH_SETTLE_S", "600")),
        hosts=HostAllowlist.parse(
            env.get("LEADRUN_WORKSPACE_SUBJECTS"), open_when_unset=mode == GOOGLE_MODE_SANDBOX
        ),
        operator_uids=_split(env.get("LEADRUN_OPERATOR_UIDS", "")),
        control_url=env.get("LEADRUN_CONTROL_URL") or None,
        firebase_api_key=env.get("LEADRUN_FIREBASE_API_KEY") or None,
        firebase_auth_domain=env.get("LEADRUN_FIREBASE_AUTH_DOMAIN") or None,
    )


def _limits(raw: str | None) -> Limits:
    try:
        return parse_limits(raw)
    except LimitsError as exc:
        raise RuntimeError(str(exc)) from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings of this process (read once)."""
    return settings_from(os.environ)
