"""API keys: `dbn_<role>_<key id>_<secret>_<checksum>`; only the SHA-256 is stored.

The typed prefix lets secret scanners recognise a leaked key; the checksum lets a service
reject a mistyped key without a lookup. Keys carry 160 random bits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass

from shared.vocabulary import PrincipalRole

PREFIX = "dbn"
ROLES = tuple(PrincipalRole)
# dbn_supervisor_<8>_<32>_<6> is 60 characters; anything much longer is not a key.
MAX_KEY_LENGTH = 100
SECRET_BITS = 160


@dataclass(frozen=True)
class IssuedKey:
    """A newly created key: the plaintext is shown once, only the hash is kept."""

    key_id: str
    plaintext: str
    key_hash: str


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _checksum(body: str) -> str:
    return _b32(zlib.crc32(body.encode("ascii")).to_bytes(4, "big"))[:6]


def hash_key(plaintext: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def issue_key(role: str) -> IssuedKey:
    """Create a random key for `role`."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    key_id = _b32(secrets.token_bytes(5))
    body = f"{PREFIX}_{role}_{key_id}_{_b32(secrets.token_bytes(SECRET_BITS // 8))}"
    plaintext = f"{body}_{_checksum(body)}"
    return IssuedKey(key_id=key_id, plaintext=plaintext, key_hash=hash_key(plaintext))


def parse_key(plaintext: str) -> tuple[str, str] | None:
    """Return (role, key id) of a well-formed key with a valid checksum, else None."""
    # Headers arrive as latin-1 text: refuse anything a key could not be before encoding it.
    if len(plaintext) > MAX_KEY_LENGTH or not plaintext.isascii():
        return None
    parts = plaintext.split("_")
    if len(parts) != 5 or parts[0] != PREFIX or parts[1] not in ROLES:
        return None
    body, checksum = plaintext.rsplit("_", 1)
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return parts[1], parts[2]


def redact(plaintext: str) -> str:
    """A key as it may appear in logs: prefix, role and key id, never the secret."""
    parsed = parse_key(plaintext)
    return f"{PREFIX}_{parsed[0]}_{parsed[1]}_…" if parsed else "(malformed key)"


def claimed_key_id(plaintext: str) -> str | None:
    """The key id a well-formed token claims, for audit records of failed attempts."""
    parsed = parse_key(plaintext)
    return parsed[1] if parsed else None
