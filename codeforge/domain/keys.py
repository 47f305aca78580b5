"""API keys: shown once, stored as a hash, carrying a role.

A key reads `cf_<prefix>_<secret>`. The prefix (public, indexed) finds the
row; the SHA-256 of the whole key is compared in constant time. SHA-256 and
not a slow KDF: the secret is 32 random bytes, not a password to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime
from enum import StrEnum

from msgspec import Struct

from codeforge.domain.entity import Entity
from codeforge.domain.errors import Forbidden

KEY_PREFIX = "cf"


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def can_mutate(self) -> bool:
        return self is not Role.VIEWER

    @property
    def can_administer(self) -> bool:
        return self is Role.ADMIN


class ApiKey(Entity, frozen=True, kw_only=True):
    name: str
    role: Role
    prefix: str
    key_hash: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_key(presented))


class IssuedKey(Struct, frozen=True):
    """A new key: `secret` is the only time the plain key exists outside the caller."""

    key: ApiKey
    secret: str


def issue_key(
    *, key_id: uuid.UUID, tenant_id: uuid.UUID, name: str, role: Role, now: datetime
) -> IssuedKey:
    prefix = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        id=key_id,
        tenant_id=tenant_id,
        name=name,
        role=role,
        prefix=prefix,
        key_hash=hash_key(secret),
        created_at=now,
        updated_at=now,
    )
    return IssuedKey(key=key, secret=secret)


def hash_key(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def prefix_of(presented: str) -> str | None:
    """The lookup prefix of a presented key, or None when it is not shaped like one."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 8 or not parts[2]:
        return None
    return parts[1]


class Principal(Struct, frozen=True):
    """Who is calling: the tenant, the key they hold and what it may do."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    role: Role

    def require_mutation(self) -> None:
        if not self.role.can_mutate:
            raise Forbidden("this API key is read-only (role viewer)")

    def require_admin(self) -> None:
        if not self.role.can_administer:
            raise Forbidden("this action needs an admin API key")
