"""Authenticated keys are remembered briefly; revocation still bites."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from adapters.memory.stores import MemoryApiKeyStore, MemoryTenantStore
from codeforge.domain.errors import Unauthenticated
from codeforge.domain.keys import Principal, Role
from codeforge.services.api_keys import ApiKeys
from codeforge.services.key_cache import KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal() -> Principal:
    return Principal(tenant_id=uuid.uuid4(), key_id=uuid.uuid4(), role=Role.MEMBER)


def test_an_entry_lives_for_its_ttl() -> None:
    clock = Clock()
    cache = KeyCache(ttl=5, clock=clock)
    who = principal()
    cache.remember("h", who)
    clock.now += 4.9
    assert cache.get("h") == who
    clock.now += 0.2
    assert cache.get("h") is None


def test_forgetting_a_key_drops_every_entry_of_it() -> None:
    cache = KeyCache(ttl=5)
    who = principal()
    cache.remember("a", who)
    cache.remember("b", who)
    cache.forget(who.key_id)
    assert cache.get("a") is None
    assert cache.get("b") is None


def test_touches_are_due_once_per_interval() -> None:
    clock = Clock()
    cache = KeyCache(touch_interval=60, clock=clock)
    key_id = uuid.uuid4()
    assert cache.due_for_touch(key_id)
    assert not cache.due_for_touch(key_id)
    clock.now += 60
    assert cache.due_for_touch(key_id)


def test_the_cache_is_bounded() -> None:
    cache = KeyCache(ttl=5, max_entries=3)
    for i in range(10):
        cache.remember(str(i), principal())
    assert [cache.get(str(i)) is not None for i in range(10)] == [False] * 7 + [True] * 3


def test_a_zero_ttl_remembers_nothing() -> None:
    cache = KeyCache(ttl=0)
    cache.remember("h", principal())
    assert cache.get("h") is None


async def test_a_key_revoked_elsewhere_stops_working_within_the_ttl() -> None:
    clock = Clock()
    store = MemoryApiKeyStore()
    keys = ApiKeys(store, MemoryTenantStore(), cache=KeyCache(ttl=5, clock=clock))
    issued = await keys.create(name="ci", role=Role.MEMBER)
    assert (await keys.authenticate(issued.secret)).key_id == issued.key.id

    # Another process revokes it: this one's store sees the change, its cache does not.
    key = await store.get(issued.key.tenant_id, issued.key.id)
    now = datetime.now(UTC)
    await store.update(key.evolve(now, revoked_at=now))
    assert (await keys.authenticate(issued.secret)).key_id == issued.key.id
    clock.now += 5
    with pytest.raises(Unauthenticated, match="revoked"):
        await keys.authenticate(issued.secret)


async def test_a_key_revoked_here_stops_working_at_once() -> None:
    keys = ApiKeys(MemoryApiKeyStore(), MemoryTenantStore(), cache=KeyCache(ttl=60))
    admin = await keys.create(name="admin", role=Role.ADMIN)
    member = await keys.create(name="ci", role=Role.MEMBER)
    caller = await keys.authenticate(admin.secret)
    await keys.authenticate(member.secret)
    await keys.revoke(caller, member.key.id)
    with pytest.raises(Unauthenticated):
        await keys.authenticate(member.secret)
