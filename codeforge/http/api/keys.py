"""/api/v1/keys — API keys of the caller's tenant (admin keys only)."""

from __future__ import annotations

import uuid

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from codeforge.domain.keys import Principal
from codeforge.http.api.params import Cursor, IdempotencyKey, Limit, cursor_id
from codeforge.http.api.routes import delete, get, post
from codeforge.http.api.schemas import KeyCreate, KeyCreated, KeyView, ListPage
from codeforge.services.api_keys import ApiKeys


class KeyController(Controller):
    path = "/keys"
    tags = ["keys"]

    @post("/", summary="Create an API key; the secret is in this response only")
    async def create(
        self,
        data: JSONBody[KeyCreate],
        keys: NamedDependency[ApiKeys],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> KeyCreated:
        principal.require_admin()
        issued = await keys.create(name=data.name, role=data.role, tenant_id=principal.tenant_id)
        return KeyCreated(key=KeyView.of(issued.key), secret=issued.secret)

    @get("/", summary="List API keys (never their secrets)")
    async def list_keys(
        self,
        keys: NamedDependency[ApiKeys],
        principal: NamedDependency[Principal],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> ListPage[KeyView]:
        page = await keys.list(principal, limit=limit, after=cursor_id(cursor))
        return ListPage([KeyView.of(k) for k in page.items], page.next_cursor)

    @get("/{key_id:uuid}", summary="Get an API key")
    async def get_key(
        self,
        key_id: FromPath[uuid.UUID],
        keys: NamedDependency[ApiKeys],
        principal: NamedDependency[Principal],
    ) -> KeyView:
        return KeyView.of(await keys.get(principal, key_id))

    @delete("/{key_id:uuid}", summary="Revoke an API key (it stops working at once)")
    async def revoke(
        self,
        key_id: FromPath[uuid.UUID],
        keys: NamedDependency[ApiKeys],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> None:
        await keys.revoke(principal, key_id)
