"""The acting user of an API call, from its credentials, as Google learns the delegated subject.

A client presents ``Authorization: Bearer sandbox-user:<email>``: the sandbox's stand-in for an
access token minted for a service account acting as ``<email>`` (domain-wide delegation). It
proves nothing, on purpose: the sandbox serves only localhost and never holds real data. A call
without it is refused with Google's 401, so code that forgets to act as a user fails here too.
"""

from __future__ import annotations

from typing import Any

from sandbox.errors import ApiError

TOKEN_PREFIX = "sandbox-user:"  # noqa: S105  (names a user; no secret)
_SEE = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}


def missing_credentials() -> ApiError:
    """Google's 401 for a call with no credentials."""
    return ApiError(
        401,
        f"Request is missing required authentication credential. {_SEE}",
        "required",
        location="Authorization",
        location_type="header",
        item_message="Login Required.",
        headers=_CHALLENGE,
    )


def invalid_credentials() -> ApiError:
    """Google's 401 for credentials it cannot accept."""
    return ApiError(
        401,
        f"Request had invalid authentication credentials. {_SEE}",
        "authError",
        location="Authorization",
        location_type="header",
        item_message="Invalid Credentials",
        headers=_CHALLENGE,
    )


def bearer_token(subject: str) -> str:
    """The access token a client presents to act as ``subject``."""
    return TOKEN_PREFIX + subject


def acting_user(headers: Any) -> str:
    """The lower-cased address a request acts as; 401 without usable credentials."""
    header = str(headers.get("Authorization") or "").strip()
    if not header:
        raise missing_credentials()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        raise invalid_credentials()
    user = token.removeprefix(TOKEN_PREFIX).strip().lower()
    local, at, domain = user.partition("@")
    if not (local and at and domain) or any(c.isspace() for c in user):
        raise invalid_credentials()
    return user
