"""The policy store's contract (codeforge.ports.policy.PolicyStore), in memory and in
PostgreSQL: the entity stores' whole suite, plus names unique within their place."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from hypothesis import strategies as st

from adapters.memory.policies import MemoryPolicyStore
from adapters.postgres.stores.policies import PostgresPolicyStore
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.domain.policy.stored import Policy, PolicyScope
from tests.contract.test_entity_stores import CREATED, LATER, ScopedStoreContract, text, times

pytestmark = pytest.mark.contract

DOCUMENT = "# a profile\nmode: default\nrules:\n  allow: [Read]\n"


class TestPolicyStore(ScopedStoreContract):
    memory = MemoryPolicyStore
    postgres = PostgresPolicyStore
    text_field = "description"
    enum_field = "scope"
    unique_field = "name"
    filters = ("scope", "project_id", "name")
    project_a = new_id()
    project_b = new_id()

    def make(self, tenant_id: uuid.UUID, n: int = 0) -> Policy:
        return Policy(
            id=new_id(),
            tenant_id=tenant_id,
            name=f"policy-{n}",
            document=DOCUMENT,
            created_at=CREATED,
            updated_at=CREATED,
        )

    def full(self, tenant_id: uuid.UUID) -> Policy:
        return Policy(
            id=new_id(),
            tenant_id=tenant_id,
            name="strict.v2",
            scope=PolicyScope.PROJECT,
            project_id=self.project_a,
            document="# Ünïcode ✓\nmode: plan\n",
            description="Read-only, with 'quotes'",
            mode="plan",
            based_on="plan-readonly",
            created_at=CREATED,
            updated_at=LATER,
        )

    def entities(self) -> st.SearchStrategy[Policy]:
        return st.builds(
            Policy,
            id=st.just(new_id()),
            name=text,
            scope=st.just(PolicyScope.PROJECT),
            project_id=st.none() | st.just(self.project_b),
            document=text,
            description=text,
            mode=text,
            based_on=text,
            created_at=times,
            updated_at=times,
        )

    def variants(self, tenant_id: uuid.UUID) -> list[Policy]:
        shapes = [(self.project_a, "a"), (self.project_b, "b"), (self.project_a, "c")]
        return [
            msgspec.structs.replace(self.make(tenant_id, n), project_id=project, name=name)
            for n, (project, name) in enumerate(shapes)
        ]

    # -- names within their place ------------------------------------------------------------

    async def test_one_name_may_serve_several_projects_and_the_tenant(
        self, store: object, tenant_id: uuid.UUID
    ) -> None:
        s: MemoryPolicyStore = store  # type: ignore[assignment]
        shared = await s.add(self.make(tenant_id))
        in_a = await s.add(msgspec.structs.replace(self.make(tenant_id), project_id=self.project_a))
        in_b = await s.add(msgspec.structs.replace(self.make(tenant_id), project_id=self.project_b))
        assert await s.get_by_name(tenant_id, "policy-0", None) == shared
        assert await s.get_by_name(tenant_id, "policy-0", self.project_a) == in_a
        assert await s.get_by_name(tenant_id, "policy-0", self.project_b) == in_b
        with pytest.raises(Conflict) as raised:
            await s.add(msgspec.structs.replace(self.make(tenant_id), project_id=self.project_a))
        assert raised.value.field == "name"

    async def test_a_name_is_not_found_in_another_place_or_tenant(
        self, store: object, tenant_id: uuid.UUID
    ) -> None:
        s: MemoryPolicyStore = store  # type: ignore[assignment]
        await s.add(msgspec.structs.replace(self.make(tenant_id), project_id=self.project_a))
        with pytest.raises(NotFound):
            await s.get_by_name(tenant_id, "policy-0", None)
        with pytest.raises(NotFound):
            await s.get_by_name(tenant_id, "policy-0", self.project_b)
        with pytest.raises(NotFound):
            await s.get_by_name(uuid.uuid4(), "policy-0", self.project_a)
        with pytest.raises(NotFound):
            await s.get_by_name(tenant_id, "nul\x00name", self.project_a)

    async def test_a_global_policy_bound_to_a_project_is_refused(
        self, store: object, tenant_id: uuid.UUID
    ) -> None:
        s: MemoryPolicyStore = store  # type: ignore[assignment]
        bad = msgspec.structs.replace(
            self.make(tenant_id), scope=PolicyScope.GLOBAL, project_id=self.project_a
        )
        with pytest.raises(ValidationFailed) as raised:
            await s.add(bad)
        assert raised.value.field == "project_id"

    async def test_global_policies_are_listed_by_scope(
        self, store: object, tenant_id: uuid.UUID
    ) -> None:
        s: MemoryPolicyStore = store  # type: ignore[assignment]
        glob = await s.add(
            msgspec.structs.replace(self.make(tenant_id, 1), scope=PolicyScope.GLOBAL)
        )
        await s.add(self.make(tenant_id, 2))
        page = await s.list(tenant_id, filters={"scope": "global"})
        assert page.items == [glob]
