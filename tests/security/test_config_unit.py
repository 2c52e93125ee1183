"""Settings that keep production safe: certificates, host allowlist, CORS origins."""

from __future__ import annotations

import pytest

from common.config import GOOGLE_SECURETOKEN_CERTS_URL, HostAllowlist, settings_from

SANDBOX_CERTS = "http://127.0.0.1:9999/_sandbox/certs"
LOCAL = {
    "GOOGLE_CLOUD_PROJECT": "p",
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8081",
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085",
    "LEADRUN_GOOGLE_MODE": "sandbox",
    "WORKSPACE_SANDBOX_URL": "http://127.0.0.1:9999",
    "LEADRUN_FIREBASE_CERTS_URL": SANDBOX_CERTS,
}
PRODUCTION = {
    "GOOGLE_CLOUD_PROJECT": "p",
    "LEADRUN_GOOGLE_MODE": "workspace",
    "LEADRUN_FIREBASE_CERTS_URL": SANDBOX_CERTS,  # set by mistake, or by an attacker
    "LEADRUN_WORKSPACE_SUBJECTS": "host@example.com",
}


def test_the_emulators_trust_the_sandbox_keys() -> None:
    assert settings_from(LOCAL).certs_url == SANDBOX_CERTS


def test_production_ignores_the_sandbox_keys() -> None:
    assert settings_from(PRODUCTION).certs_url == GOOGLE_SECURETOKEN_CERTS_URL
    without_emulator = {k: v for k, v in LOCAL.items() if k != "FIRESTORE_EMULATOR_HOST"}
    assert settings_from(without_emulator).certs_url == GOOGLE_SECURETOKEN_CERTS_URL


def test_allowlist_unset_is_open_on_the_sandbox_and_closed_in_production() -> None:
    local = settings_from(LOCAL).hosts
    assert local.refusal("anyone@anywhere.test", "anyone@anywhere.test") is None
    production = settings_from({**PRODUCTION, "LEADRUN_WORKSPACE_SUBJECTS": " , "}).hosts
    refusal = production.refusal("host@example.com", "host@example.com")
    assert refusal is not None and "LEADRUN_WORKSPACE_SUBJECTS" in refusal[1]
    unset = {k: v for k, v in PRODUCTION.items() if k != "LEADRUN_WORKSPACE_SUBJECTS"}
    assert settings_from(unset).hosts.refusal("primary", "host@example.com") is not None


def test_allowlist_matches_addresses_and_domains() -> None:
    hosts = HostAllowlist.parse(
        "Host@Example.com, @sales.example.org,team.example.net", open_when_unset=False
    )
    assert hosts.allows("host@example.com") and hosts.allows("HOST@example.COM")
    assert not hosts.allows("other@example.com")
    assert hosts.allows("anyone@sales.example.org") and hosts.allows("a@team.example.net")
    assert not hosts.allows("a@evil.sales.example.org")
    assert not hosts.allows("sales.example.org")  # a domain is not an address
    assert hosts.refusal("primary", "host@example.com") is None
    assert hosts.refusal("host@example.com", "host@example.com") is None
    assert hosts.refusal("primary", "ceo@example.com") == (
        "host.senderEmail",
        "this host is not one this deployment may act as",
    )
    field, _ = hosts.refusal("ceo@example.com", "host@example.com") or ("", "")
    assert field == "host.calendarId"
    # Setting it in sandbox mode applies it too.
    local = settings_from({**LOCAL, "LEADRUN_WORKSPACE_SUBJECTS": "host@example.com"}).hosts
    assert local.refusal("primary", "ceo@example.com") is not None


@pytest.mark.parametrize(
    "origins",
    ["*", "https://app.example.com,*", "null", "https://*.example.com", "app.example.com"],
)
def test_cors_origins_are_exact(origins: str) -> None:
    with pytest.raises(RuntimeError, match="LEADRUN_ALLOWED_ORIGINS"):
        settings_from({**LOCAL, "LEADRUN_ALLOWED_ORIGINS": origins})


def test_cors_origins_are_normalised() -> None:
    settings = settings_from(
        {**LOCAL, "LEADRUN_ALLOWED_ORIGINS": "https://App.Example.com, http://localhost:5173"}
    )
    assert settings.allowed_origins == {"https://app.example.com", "http://localhost:5173"}


def test_operators_are_none_unless_listed() -> None:
    assert settings_from(PRODUCTION).operator_uids == frozenset()
    assert settings_from({**PRODUCTION, "LEADRUN_OPERATOR_UIDS": " , "}).operator_uids == set()
    listed = settings_from({**PRODUCTION, "LEADRUN_OPERATOR_UIDS": "ops-1, ops-2 ,"})
    assert listed.operator_uids == {"ops-1", "ops-2"}
