"""API keys: issue, list, revoke, authenticate; and the first admin key of a new install."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import structlog

from codeforge.domain.errors import NotFound, Unauthenticated, ValidationFailed
from codeforge.domain.ids import DEFAULT_TENANT_ID, new_id
from codeforge.domain.keys import (
    ApiKey,
    IssuedKey,
    Principal,
    Role,
    hash_key,
    issue_key,
    prefix_of,
)
from codeforge.domain.tenants import Tenant
from codeforge.ports.stores import ApiKeyStore, Page, TenantStore
from codeforge.services.clock import Clock, utc_now
from codeforge.services.key_cache import KeyCache

log = structlog.get_logger("codeforge.keys")

ADMIN_KEY_FILE = "admin-key"


class ApiKeys:
    def __init__(
        self,
        keys: ApiKeyStore,
        tenants: TenantStore,
        clock: Clock = utc_now,
        cache: KeyCache | None = None,
    ) -> None:
        self._keys = keys
        self._tenants = tenants
        self._clock = clock
        self._cache = cache or KeyCache(ttl=0)

    async def create(
        self, *, name: str, role: Role, tenant_id: uuid.UUID = DEFAULT_TENANT_ID
    ) -> IssuedKey:
        """Issue a key; the plain secret is in the result and nowhere else, ever."""
        if not name.strip() or len(name) > 100:
            raise ValidationFailed("a key name is 1-100 characters", field="name")
        issued = issue_key(
            key_id=new_id(), tenant_id=tenant_id, name=name, role=role, now=self._clock()
        )
        await self._keys.add(issued.key)
        log.info("api key created", key_id=str(issued.key.id), role=role.value)
        return issued

    async def create_for_tenant_name(self, *, name: str, role: Role, tenant: str) -> IssuedKey:
        """For the CLI: the tenant is named, and created when it does not exist yet."""
        tenant_id = await self._tenant_id(tenant)
        return await self.create(name=name, role=role, tenant_id=tenant_id)

    async def list(
        self, principal: Principal, *, limit: int = 50, after: uuid.UUID | None = None
    ) -> Page[ApiKey]:
        principal.require_admin()
        return await self._keys.list(principal.tenant_id, limit=limit, after=after)

    async def get(self, principal: Principal, key_id: uuid.UUID) -> ApiKey:
        principal.require_admin()
        return await self._keys.get(principal.tenant_id, key_id)

    async def revoke(self, principal: Principal, key_id: uuid.UUID) -> ApiKey:
        principal.require_admin()
        key = await self._keys.get(principal.tenant_id, key_id)
        if not key.active:
            return key
        revoked = await self._keys.update(key.evolve(self._clock(), revoked_at=self._clock()))
        self._cache.forget(key_id)
        log.info("api key revoked", key_id=str(key_id))
        return revoked

    async def authenticate(self, presented: str) -> Principal:
        digest = hash_key(presented)
        principal = self._cache.get(digest)
        if principal is None:
            prefix = prefix_of(presented)
            key = await self._keys.find_by_prefix(prefix) if prefix else None
            if key is None or not key.matches(presented):
                raise Unauthenticated("the API key is not valid")
            if not key.active:
                raise Unauthenticated("the API key has been revoked")
            principal = Principal(tenant_id=key.tenant_id, key_id=key.id, role=key.role)
            self._cache.remember(digest, principal)
        if self._cache.due_for_touch(principal.key_id):
            await self._keys.touch(principal.key_id, self._clock())
        return principal

    async def ensure_first_admin(self, data_dir: Path) -> Path | None:
        """On a database with no active key, issue an admin key into <data_dir>/admin-key.

        The file is 0600 and the key is never logged: the log says where to find it.
        Returns the path when a key was created.
        """
        if await self._keys.count_active() > 0:
            return None
        issued = await self.create(name="first admin", role=Role.ADMIN)
        path = data_dir / ADMIN_KEY_FILE
        await asyncio.to_thread(_write_private, path, issued.secret + "\n")
        log.warning("first admin API key created; read it from the file", path=str(path))
        return path

    async def tenant_id_of(self, name: str) -> uuid.UUID:
        """The id of an existing tenant, by name ("default" included)."""
        if name == "default":
            return DEFAULT_TENANT_ID
        return (await self._tenants.get_by_name(name)).id

    async def _tenant_id(self, name: str) -> uuid.UUID:
        if name == "default":
            return DEFAULT_TENANT_ID
        try:
            return (await self._tenants.get_by_name(name)).id
        except NotFound:
            pass
        now = self._clock()
        tenant_id = new_id()
        tenant = Tenant(
            id=tenant_id, tenant_id=tenant_id, name=name, created_at=now, updated_at=now
        )
        await self._tenants.add(tenant)
        log.info("tenant created", tenant_id=str(tenant_id), name=name)
        return tenant_id


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    # O_CREAT's mode does not apply to a file that already existed.
    path.chmod(0o600)


async def principal_for_key(
    keys: ApiKeyStore, tenant_id: uuid.UUID, key_id: uuid.UUID
) -> Principal:
    """The principal of a key still in force (for sessions opened with it)."""
    try:
        key = await keys.get(tenant_id, key_id)
    except NotFound:
        raise Unauthenticated("the session's API key no longer exists") from None
    if not key.active:
        raise Unauthenticated("the session's API key has been revoked")
    return Principal(tenant_id=key.tenant_id, key_id=key.id, role=key.role)
