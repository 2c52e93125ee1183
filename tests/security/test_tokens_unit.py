"""Token checks and certificate caching, offline: the sandbox's issuer, a stub HTTP session."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from common.auth import (
    CLOCK_SKEW_S,
    MAX_CERT_AGE_S,
    MIN_REFRESH_INTERVAL_S,
    CertificateCache,
    CertificatesUnavailable,
    FirebaseVerifier,
    Unauthenticated,
    cache_seconds,
)
from sandbox.tokens import TokenIssuer

PROJECT = "leadrun-unit"


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CertServer(requests.Session):
    """Answers every GET with the issuer's certificates and a Cache-Control header."""

    def __init__(self, issuer: TokenIssuer, cache_control: str = "public, max-age=3600") -> None:
        super().__init__()
        self.issuer = issuer
        self.cache_control = cache_control
        self.status = 200

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = requests.Response()
        response.status_code = self.status
        response.headers["Cache-Control"] = self.cache_control
        response._content = requests.compat.json.dumps(self.issuer.certs()).encode()
        return response


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer(PROJECT)


def _verifier(issuer: TokenIssuer, **server: Any) -> tuple[FirebaseVerifier, CertificateCache]:
    clock = FakeClock()
    cache = CertificateCache(
        "https://certs.invalid", session=CertServer(issuer, **server), clock=clock
    )
    return FirebaseVerifier(PROJECT, cache), cache


def test_a_valid_token_gives_its_uid(issuer: TokenIssuer) -> None:
    verifier, _ = _verifier(issuer)
    assert verifier.uid(f"Bearer {issuer.mint('alice')}") == "alice"
    assert verifier.uid(f"bearer {issuer.mint('bob')}") == "bob"  # the scheme is case-insensitive


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"exp": -3600, "iat": -7200}, "expired"),
        ({"exp": -(CLOCK_SKEW_S + 5)}, "expired past the skew"),
        ({"iat": CLOCK_SKEW_S + 30}, "issued in the future"),
        ({"auth_time": CLOCK_SKEW_S + 30}, "authenticated in the future"),
        ({"auth_time": None}, "no auth_time"),
        ({"auth_time": True}, "auth_time a boolean"),
        ({"sub": None}, "no subject"),
        ({"sub": ""}, "empty subject"),
        ({"aud": "other-project"}, "wrong audience"),
        ({"iss": "https://securetoken.google.com/other-project"}, "wrong issuer"),
    ],
)
def test_claims_are_checked(issuer: TokenIssuer, overrides: dict[str, Any], why: str) -> None:
    now = int(time.time())
    claims = {
        key: (now + value if key in ("exp", "iat", "auth_time") and type(value) is int else value)
        for key, value in overrides.items()
    }
    verifier, _ = _verifier(issuer)
    with pytest.raises(Unauthenticated):
        verifier.uid(f"Bearer {issuer.mint('alice', claims)}")


def test_production_certificates_refuse_sandbox_tokens(issuer: TokenIssuer) -> None:
    """A verifier that trusts another key set (Google's, in production) refuses the sandbox's."""
    google = TokenIssuer(PROJECT)
    verifier, cache = _verifier(google)
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.uid(f"Bearer {issuer.mint('alice')}")
    assert cache.fetches == 1  # the refresh on an unknown key is rate-limited


def test_certificates_are_kept_as_long_as_max_age_says(issuer: TokenIssuer) -> None:
    verifier, cache = _verifier(issuer, cache_control="public, max-age=600, must-revalidate")
    clock: FakeClock = cache._clock  # type: ignore[assignment]
    token = f"Bearer {issuer.mint('alice')}"
    for _ in range(20):
        verifier.uid(token)
    assert cache.fetches == 1
    clock.now += 599
    verifier.uid(token)
    assert cache.fetches == 1
    clock.now += 2
    verifier.uid(token)
    assert cache.fetches == 2


def test_no_store_means_no_caching(issuer: TokenIssuer) -> None:
    verifier, cache = _verifier(issuer, cache_control="no-store, max-age=600")
    token = f"Bearer {issuer.mint('alice')}"
    for _ in range(3):
        verifier.uid(token)
    assert cache.fetches == 3


def test_unknown_keys_refresh_at_most_every_interval(issuer: TokenIssuer) -> None:
    verifier, cache = _verifier(issuer)
    clock: FakeClock = cache._clock  # type: ignore[assignment]
    stray = f"Bearer {TokenIssuer(PROJECT).mint('alice')}"  # a key nobody published
    cache.get()
    for _ in range(50):
        with pytest.raises(Unauthenticated):
            verifier.uid(stray)
    assert cache.fetches == 1
    clock.now += MIN_REFRESH_INTERVAL_S
    with pytest.raises(Unauthenticated):
        verifier.uid(stray)
    assert cache.fetches == 2


def test_cache_control_parsing() -> None:
    assert cache_seconds("public, max-age=19302, must-revalidate, no-transform") == 19302
    assert cache_seconds("max-age=99999999") == MAX_CERT_AGE_S
    assert cache_seconds("s-maxage=600") == 0
    assert cache_seconds("no-cache") == 0
    assert cache_seconds("") == 0


def test_unreachable_certificates_are_a_server_problem(issuer: TokenIssuer) -> None:
    verifier, cache = _verifier(issuer)
    cache._session.status = 503  # type: ignore[attr-defined]
    with pytest.raises(CertificatesUnavailable):
        verifier.uid(f"Bearer {issuer.mint('alice')}")
