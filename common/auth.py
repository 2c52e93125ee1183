"""Firebase ID token verification (docs/api.md, "Auth"); certificates kept as Cache-Control says."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

CLOCK_SKEW_S = 60
# Google's securetoken certificates say max-age of a few hours; never trust one for longer.
MAX_CERT_AGE_S = 24 * 3600
# A token naming an unknown key makes us refetch at most this often, so forged `kid`s cannot turn
# every request into a certificate download.
MIN_REFRESH_INTERVAL_S = 30.0
# Firebase ID tokens are ~1 KB; anything far larger is not one and is not worth parsing.
MAX_TOKEN_CHARS = 8192
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-store|no-cache)(?:$|[,\s=])", re.IGNORECASE)


class Unauthenticated(Exception):
    """The request carries no valid Firebase ID token."""


class CertificatesUnavailable(Exception):
    """The signing certificates could not be fetched: a server-side problem, not the caller's."""


@dataclass
class _CachedCerts:
    certs: dict[str, str]
    expires: float
    fetched: float


def cache_seconds(cache_control: str) -> int:
    """How long a `Cache-Control` value lets us keep a response (0 when it must not be cached)."""
    if _NO_CACHE.search(cache_control):
        return 0
    match = _MAX_AGE.search(cache_control)
    return min(int(match.group(1)), MAX_CERT_AGE_S) if match else 0


class CertificateCache:
    """Fetches the securetoken certificates and keeps them for as long as the server allows."""

    def __init__(
        self,
        url: str,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _CachedCerts | None = None
        self.fetches = 0

    def get(self, *, refresh: bool = False) -> dict[str, str]:
        """The current certificates (kid -> PEM); `refresh` asks for a new copy (rate-limited)."""
        with self._lock:
            now = self._clock()
            cached = self._cached
            stale = cached is None or cached.expires <= now
            may_refresh = cached is None or now - cached.fetched >= MIN_REFRESH_INTERVAL_S
            if stale or (refresh and may_refresh):
                self._cached = cached = self._fetch(now)
            assert cached is not None
            return cached.certs

    def _fetch(self, now: float) -> _CachedCerts:
        try:
            answer = self._session.get(self.url, timeout=10)
            answer.raise_for_status()
            body = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise CertificatesUnavailable(f"cannot fetch signing certificates: {exc}") from exc
        if not isinstance(body, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in body.items()
        ):
            raise CertificatesUnavailable("signing certificates are not a {kid: PEM} object")
        self.fetches += 1
        max_age = cache_seconds(answer.headers.get("Cache-Control", ""))
        return _CachedCerts(dict(body), now + max_age, now)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class FirebaseVerifier:
    """Checks signature, `iss`, `aud`, `sub`, `exp`, `iat` and `auth_time` like Firebase does."""

    def __init__(
        self, project: str, certs: CertificateCache, clock: Callable[[], float] = time.time
    ) -> None:
        self.project = project
        self.certs = certs
        self._clock = clock

    def uid(self, authorization: str | None) -> str:
        """The uid of a `Bearer <token>` header; raises Unauthenticated otherwise."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated("missing Bearer token")
        token = token.strip()
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise Unauthenticated("malformed token")
        try:
            header = jwt.decode_header(token)
        except (ValueError, TypeError, auth_exceptions.GoogleAuthError) as exc:
            raise Unauthenticated("malformed token") from exc
        # RS256 only: "none", HS256 (keyed with a public certificate) and friends are refused.
        if header.get("alg") != "RS256":
            raise Unauthenticated("token must be signed with RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token names no signing key")
        certs = self.certs.get()
        if kid not in certs:
            certs = self.certs.get(refresh=True)  # keys rotate; one refresh before refusing
        if kid not in certs:
            raise Unauthenticated("token signed by an unknown key")
        try:
            claims: dict[str, Any] = dict(
                jwt.decode(
                    token,
                    certs={kid: certs[kid]},
                    audience=self.project,
                    clock_skew_in_seconds=CLOCK_SKEW_S,
                )
            )
        except (ValueError, TypeError, auth_exceptions.GoogleAuthError) as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        self._check_claims(claims)
        return str(claims["sub"])

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """What `google.auth.jwt.decode` leaves to us (it checked signature, aud, iat, exp)."""
        if claims.get("iss") != f"https://securetoken.google.com/{self.project}":
            raise Unauthenticated("wrong issuer")
        if claims.get("aud") != self.project:
            raise Unauthenticated("wrong audience")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 128:
            raise Unauthenticated("missing subject")
        now = self._clock()
        iat: Any = claims.get("iat")
        exp: Any = claims.get("exp")
        auth_time: Any = claims.get("auth_time")
        if not _number(iat) or not _number(exp):
            raise Unauthenticated("iat and exp are required")
        if float(exp) <= now - CLOCK_SKEW_S or float(iat) > now + CLOCK_SKEW_S:
            raise Unauthenticated("token expired or not yet valid")
        if not _number(auth_time) or float(auth_time) > now + CLOCK_SKEW_S:
            raise Unauthenticated("auth_time missing or in the future")
