"""Firebase-shaped ID tokens signed by a key generated at start, and its X.509 certificate.

``GET /_sandbox/certs`` serves ``{kid: PEM certificate}`` like Google's securetoken endpoint, so
``google.oauth2.id_token.verify_token(..., certs_url=SANDBOX_URL + "/_sandbox/certs")`` works.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt


def _signer(key: rsa.RSAPrivateKey, kid: str) -> crypt.RSASigner:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return crypt.RSASigner.from_string(pem, key_id=kid)


class TokenIssuer:
    """Mints RS256 ID tokens for ``project`` and publishes the matching certificate."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha1(public).hexdigest()  # noqa: S324 - a key id, like Google's
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")]
        )
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.signer = _signer(self.key, self.kid)

    def certs(self) -> dict[str, str]:
        """``{kid: PEM certificate}``."""
        return {self.kid: self.cert_pem}

    def mint(
        self, uid: str, overrides: dict[str, Any] | None = None, unknown_key: bool = False
    ) -> str:
        """An ID token for ``uid``; ``overrides`` replace claims, a ``None`` value removes one.

        ``unknown_key`` signs with a throwaway key whose certificate is not published.
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"https://securetoken.google.com/{self.project}",
            "aud": self.project,
            "auth_time": now,
            "user_id": uid,
            "sub": uid,
            "iat": now,
            "exp": now + 3600,
            "firebase": {"identities": {}, "sign_in_provider": "custom"},
        }
        for key, value in (overrides or {}).items():
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        signer = self.signer
        if unknown_key:
            signer = _signer(
                rsa.generate_private_key(public_exponent=65537, key_size=2048), self.kid
            )
        return jwt.encode(signer, claims).decode()
