"""Firebase ID token verification (CONTRACT §2), with certificates cached as Cache-Control says."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

CLOCK_SKEW_S = 60
_MAX_AGE = re.compile(r"max-age=(\d+)")


class Unauthenticated(Exception):
    """The request carries no valid Firebase ID token."""


@dataclass
class _CachedCerts:
    certs: dict[str, str]
    expires: float


class CertificateCache:
    """Fetches the securetoken certificates and keeps them for as long as the server allows."""

    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.url = url
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._cached: _CachedCerts | None = None
        self.fetches = 0

    def get(self, *, refresh: bool = False) -> dict[str, str]:
        """The current certificates (kid -> PEM)."""
        with self._lock:
            now = time.monotonic()
            if refresh or self._cached is None or self._cached.expires <= now:
                answer = self._session.get(self.url, timeout=10)
                answer.raise_for_status()
                match = _MAX_AGE.search(answer.headers.get("Cache-Control", ""))
                max_age = int(match.group(1)) if match else 0
                self._cached = _CachedCerts(dict(answer.json()), now + max_age)
                self.fetches += 1
            return self._cached.certs


class FirebaseVerifier:
    """Checks signature, `iss`, `aud`, `sub`, `exp`, `iat` and `auth_time` like Firebase does."""

    def __init__(self, project: str, certs: CertificateCache) -> None:
        self.project = project
        self.certs = certs

    def uid(self, authorization: str | None) -> str:
        """The uid of a `Bearer <token>` header; raises Unauthenticated otherwise."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthenticated("missing Bearer token")
        token = authorization[len("Bearer ") :].strip()
        if not token or token.count(".") != 2:
            raise Unauthenticated("malformed token")
        try:
            header = jwt.decode_header(token)
        except (ValueError, auth_exceptions.GoogleAuthError) as exc:
            raise Unauthenticated("malformed token") from exc
        if header.get("alg") != "RS256":
            raise Unauthenticated("token must be signed with RS256")
        certs = self.certs.get()
        if header.get("kid") not in certs:
            certs = self.certs.get(refresh=True)  # keys rotate; one refresh before refusing
        if header.get("kid") not in certs:
            raise Unauthenticated("token signed by an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                certs={header["kid"]: certs[header["kid"]]},
                audience=self.project,
                clock_skew_in_seconds=CLOCK_SKEW_S,
            )
        except (ValueError, auth_exceptions.GoogleAuthError) as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        self._check_claims(claims)
        return str(claims["sub"])

    def _check_claims(self, claims: dict[str, Any]) -> None:
        if claims.get("iss") != f"https://securetoken.google.com/{self.project}":
            raise Unauthenticated("wrong issuer")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 128:
            raise Unauthenticated("missing subject")
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or auth_time > time.time() + CLOCK_SKEW_S:
            raise Unauthenticated("auth_time missing or in the future")
        if not isinstance(claims.get("iat"), int | float) or not isinstance(
            claims.get("exp"), int | float
        ):
            raise Unauthenticated("iat and exp are required")
