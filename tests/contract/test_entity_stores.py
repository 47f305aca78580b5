"""The entity stores' contract (codeforge.ports.stores), run against every adapter.

`EntityStoreContract` holds what every store must do; `ScopedStoreContract` adds what
stores with many rows per tenant must do (listing, pages, filters, unique names per
tenant). Each store family subclasses them once and says how to build its entities;
the `store` fixture builds the family's store for each adapter: in memory, and in
PostgreSQL on the session's migrated database. Every test works in tenants of its own.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from adapters.memory.stores import (
    MemoryAgentStore,
    MemoryApiKeyStore,
    MemoryModelConfigStore,
    MemoryProjectStore,
    MemoryTaskStore,
    MemoryTenantStore,
)
from adapters.postgres.stores import (
    PostgresAgentStore,
    PostgresApiKeyStore,
    PostgresModelConfigStore,
    PostgresProjectStore,
    PostgresTaskStore,
    PostgresTenantStore,
)
from codeforge.domain.agents import Agent, Backend
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.ids import DEFAULT_TENANT_ID, new_id
from codeforge.domain.keys import ApiKey, Role
from codeforge.domain.limits import Limits
from codeforge.domain.model_configs import ModelConfig, ModelSource
from codeforge.domain.projects import GitHostConfig, GitHostKind, Project, SourceKind
from codeforge.domain.tasks import Task, TaskStatus
from codeforge.domain.tenants import Tenant
from codeforge.ports.errors import DependencyUnavailable
from codeforge.ports.stores import MAX_PAGE

pytestmark = pytest.mark.contract

IST = timezone(timedelta(hours=5, minutes=30))
CREATED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=IST)
LATER = datetime(2024, 5, 2, 8, 30, 0, 654321, tzinfo=UTC)

# Hypothesis runs each example in the same store (function-scoped fixtures are built
# once per test), which is why every example works in fresh tenants of its own.
hypothesis_settings = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=24)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
times = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)
amounts = st.decimals(min_value=0, max_value=10**9, places=9, allow_nan=False)
# What the tenants table's NUMERIC(14, 6) holds exactly.
money = st.decimals(min_value=0, max_value=Decimal("99999999.999999"), places=6, allow_nan=False)
counts = st.none() | st.integers(1, 2**31 - 1)
limits = st.builds(
    Limits, max_steps=counts, max_wall_seconds=counts, max_cost_usd=st.none() | amounts
)
tenant_limits = st.builds(
    Limits, max_steps=counts, max_wall_seconds=counts, max_cost_usd=st.none() | money
)


def fresh() -> str:
    return uuid.uuid4().hex


def by_id(entities: Iterable[Any]) -> list[Any]:
    """Listing order. Ids made in the same millisecond sort randomly, not by creation."""
    return sorted(entities, key=lambda entity: entity.id)


class EntityStoreContract:
    """What every entity store does. Not collected itself (no Test prefix)."""

    memory: ClassVar[Callable[..., Any]]
    postgres: ClassVar[Callable[..., Any]]
    # A text field, and an enum field if the entity has one, for the refusal tests.
    text_field: ClassVar[str]
    enum_field: ClassVar[str | None] = None
    # The unique field, and whether it is unique per tenant or across all of them.
    unique_field: ClassVar[str | None] = None
    unique_per_tenant: ClassVar[bool] = True
    # The filters the port's docstring names.
    filters: ClassVar[Sequence[str]] = ()

    @pytest.fixture(params=["memory", "postgres"])
    def store(self, request: pytest.FixtureRequest) -> Any:
        if request.param == "memory":
            return type(self).memory()
        return type(self).postgres(request.getfixturevalue("pg_pool"))

    # -- what each family says about its entities --

    def make(self, tenant_id: uuid.UUID, n: int = 0) -> Any:
        """A minimal new entity of `tenant_id`; `n` varies its unique field."""
        raise NotImplementedError

    def full(self, tenant_id: uuid.UUID) -> Any:
        """A new entity with every field set to something other than its default."""
        raise NotImplementedError

    def entities(self) -> st.SearchStrategy[Any]:
        """Entities of a placeholder tenant; `identify` gives each its own identity."""
        raise NotImplementedError

    def identify(self, entity: Any, tenant_id: uuid.UUID) -> Any:
        values: dict[str, Any] = {"id": new_id(), "tenant_id": tenant_id}
        if self.unique_field is not None:
            values[self.unique_field] = f"{getattr(entity, self.unique_field)}{fresh()}"
        return msgspec.structs.replace(entity, **values)

    def edit(self, entity: Any, n: int) -> Any:
        """A changed copy of `entity`, different for each `n`."""
        return entity.evolve(LATER, **{self.text_field: f"edit {n}"})

    def new_tenant(self) -> uuid.UUID:
        return uuid.uuid4()

    # -- add and get --

    async def test_an_added_entity_reads_back_equal_in_every_field(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = self.full(tenant_id)
        added = await store.add(entity)
        assert added == entity
        assert await store.get(tenant_id, entity.id) == entity

    @hypothesis_settings
    @given(data=st.data())
    async def test_any_valid_entity_reads_back_equal(self, store: Any, data: st.DataObject) -> None:
        entity = self.identify(data.draw(self.entities()), self.new_tenant())
        added = await store.add(entity)
        fetched = await store.get(entity.tenant_id, entity.id)
        assert added == fetched == msgspec.structs.replace(entity, version=1)

    async def test_add_stores_version_1_whatever_version_it_is_given(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = msgspec.structs.replace(self.make(tenant_id), version=7)
        assert (await store.add(entity)).version == 1
        assert (await store.get(tenant_id, entity.id)).version == 1

    async def test_adding_an_existing_id_again_is_a_conflict_on_id(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        first = await store.add(self.make(tenant_id))
        again = msgspec.structs.replace(self.make(tenant_id, n=1), id=first.id)
        with pytest.raises(Conflict) as raised:
            await store.add(again)
        assert raised.value.field == "id"
        assert await store.get(tenant_id, first.id) == first

    async def test_a_duplicate_unique_field_is_a_conflict_naming_it(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        if self.unique_field is None:
            pytest.skip("this entity has no unique field")
        first = await store.add(self.make(tenant_id))
        twin_tenant = tenant_id if self.unique_per_tenant else self.new_tenant()
        twin = msgspec.structs.replace(
            self.make(twin_tenant, n=1), **{self.unique_field: getattr(first, self.unique_field)}
        )
        with pytest.raises(Conflict, match="already exists") as raised:
            await store.add(twin)
        assert raised.value.field == self.unique_field
        with pytest.raises(NotFound):
            await store.get(twin_tenant, twin.id)

    async def test_an_update_onto_a_taken_unique_value_is_a_conflict(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        if self.unique_field is None:
            pytest.skip("this entity has no unique field")
        other_tenant = tenant_id if self.unique_per_tenant else self.new_tenant()
        first = await store.add(self.make(other_tenant))
        second = await store.add(self.make(tenant_id, n=1))
        taken = getattr(first, self.unique_field)
        with pytest.raises(Conflict) as raised:
            await store.update(second.evolve(LATER, **{self.unique_field: taken}))
        assert raised.value.field == self.unique_field
        assert await store.get(tenant_id, second.id) == second

    async def test_another_tenants_entity_does_not_exist_for_the_caller(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.add(self.make(tenant_id))
        stranger = self.new_tenant()
        with pytest.raises(NotFound):
            await store.get(stranger, entity.id)
        with pytest.raises(NotFound):
            await store.delete(stranger, entity.id)
        with pytest.raises(NotFound):
            await store.delete(stranger, entity.id, version=entity.version)
        assert await store.get(tenant_id, entity.id) == entity

    async def test_get_of_a_missing_id_is_not_found(self, store: Any, tenant_id: uuid.UUID) -> None:
        with pytest.raises(NotFound):
            await store.get(tenant_id, new_id())

    # -- update --

    async def test_update_bumps_the_version_and_returns_what_is_stored(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.add(self.make(tenant_id))
        changed = self.edit(entity, 1)
        updated = await store.update(changed)
        assert updated == msgspec.structs.replace(changed, version=2)
        assert await store.get(tenant_id, entity.id) == updated
        again = await store.update(self.edit(updated, 2))
        assert again.version == 3
        assert again.created_at == entity.created_at

    async def test_an_update_keeps_the_time_the_entity_was_created(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.add(self.make(tenant_id))
        rewritten = msgspec.structs.replace(self.edit(entity, 1), created_at=LATER)
        updated = await store.update(rewritten)
        assert updated.created_at == entity.created_at
        assert (await store.get(tenant_id, entity.id)).created_at == entity.created_at

    async def test_an_update_from_a_stale_version_is_a_conflict_and_changes_nothing(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.add(self.make(tenant_id))
        current = await store.update(self.edit(entity, 1))
        with pytest.raises(Conflict, match="reload and retry"):
            await store.update(self.edit(entity, 2))
        assert await store.get(tenant_id, entity.id) == current

    async def test_an_update_of_a_missing_entity_is_not_found(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        with pytest.raises(NotFound):
            await store.update(self.make(tenant_id))

    async def test_an_entity_deleted_meanwhile_cannot_be_updated(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.add(self.make(tenant_id))
        await store.delete(tenant_id, entity.id)
        with pytest.raises(NotFound):
            await store.update(self.edit(entity, 1))

    @hypothesis_settings
    @given(n=st.integers(2, 20))
    async def test_of_n_concurrent_updates_from_one_version_exactly_one_wins(
        self, store: Any, n: int
    ) -> None:
        tenant = self.new_tenant()
        entity = await store.add(self.identify(self.make(tenant), tenant))
        async with asyncio.timeout(20):
            results = await asyncio.gather(
                *(store.update(self.edit(entity, i)) for i in range(n)), return_exceptions=True
            )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1
        assert len(losers) == n - 1
        assert all(isinstance(e, Conflict) for e in losers), losers
        assert winners[0].version == 2
        assert await store.get(entity.tenant_id, entity.id) == winners[0]

    # -- delete --

    async def test_delete_removes_the_entity(self, store: Any, tenant_id: uuid.UUID) -> None:
        entity = await store.add(self.make(tenant_id))
        await store.delete(tenant_id, entity.id)
        with pytest.raises(NotFound):
            await store.get(tenant_id, entity.id)
        with pytest.raises(NotFound):
            await store.delete(tenant_id, entity.id)

    async def test_delete_at_the_current_version_removes_the_entity(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.update(self.edit(await store.add(self.make(tenant_id)), 1))
        await store.delete(tenant_id, entity.id, version=2)
        with pytest.raises(NotFound):
            await store.get(tenant_id, entity.id)

    async def test_delete_at_a_stale_version_is_a_conflict_and_keeps_the_entity(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.add(self.make(tenant_id))
        current = await store.update(self.edit(entity, 1))
        with pytest.raises(Conflict, match="version 1 is not current"):
            await store.delete(tenant_id, entity.id, version=1)
        assert await store.get(tenant_id, entity.id) == current

    async def test_delete_of_a_missing_entity_is_not_found(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        with pytest.raises(NotFound):
            await store.delete(tenant_id, new_id())
        with pytest.raises(NotFound):
            await store.delete(tenant_id, new_id(), version=1)

    # -- what is refused --

    async def test_a_time_without_a_time_zone_is_refused_naming_the_field(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        naive = msgspec.structs.replace(self.make(tenant_id), created_at=datetime(2024, 5, 1))
        with pytest.raises(ValidationFailed) as raised:
            await store.add(naive)
        assert raised.value.field == "created_at"

    async def test_text_with_a_nul_character_is_refused_naming_the_field(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.add(self.make(tenant_id))
        bad = {self.text_field: "a\x00b"}
        with pytest.raises(ValidationFailed) as raised:
            await store.add(msgspec.structs.replace(self.make(tenant_id, n=1), **bad))
        assert raised.value.field == self.text_field
        with pytest.raises(ValidationFailed) as raised:
            await store.update(entity.evolve(LATER, **bad))
        assert raised.value.field == self.text_field
        assert await store.get(tenant_id, entity.id) == entity

    async def test_a_value_outside_an_enum_is_refused_naming_the_field(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        if self.enum_field is None:
            pytest.skip("this entity has no enum field")
        bad = msgspec.structs.replace(self.make(tenant_id), **{self.enum_field: "bogus"})
        with pytest.raises(ValidationFailed) as raised:
            await store.add(bad)
        assert raised.value.field == self.enum_field

    async def test_an_unknown_filter_is_refused_naming_the_allowed_ones(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        with pytest.raises(ValidationFailed) as raised:
            await store.list(tenant_id, filters={"colour": "red"})
        assert raised.value.field == "colour"
        assert f"allowed: {', '.join(sorted(self.filters))}" in raised.value.message

    @pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1])
    async def test_a_page_size_out_of_range_is_refused(
        self, store: Any, tenant_id: uuid.UUID, limit: int
    ) -> None:
        with pytest.raises(ValidationFailed) as raised:
            await store.list(tenant_id, limit=limit)
        assert raised.value.field == "limit"


class ScopedStoreContract(EntityStoreContract):
    """What stores holding many rows per tenant do besides. Not collected itself."""

    def variants(self, tenant_id: uuid.UUID) -> list[Any]:
        """New entities of `tenant_id` that differ in every filtered field."""
        raise NotImplementedError

    async def test_an_update_cannot_move_an_entity_to_another_tenant(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        entity = await store.add(self.make(tenant_id))
        moved = msgspec.structs.replace(self.edit(entity, 1), tenant_id=self.new_tenant())
        with pytest.raises(NotFound):
            await store.update(moved)
        assert await store.get(tenant_id, entity.id) == entity

    async def test_the_unique_field_is_free_in_other_tenants(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        if self.unique_field is None or not self.unique_per_tenant:
            pytest.skip("no field here is unique per tenant")
        first = await store.add(self.make(tenant_id))
        other = self.new_tenant()
        same = {self.unique_field: getattr(first, self.unique_field)}
        twin = await store.add(msgspec.structs.replace(self.make(other), **same))
        assert await store.get(other, twin.id) == twin

    @hypothesis_settings
    @given(count=st.integers(0, 12), size=st.integers(1, 6))
    async def test_pages_cover_every_entity_once_oldest_first(
        self, store: Any, count: int, size: int
    ) -> None:
        tenant = self.new_tenant()
        added = [await store.add(self.make(tenant, n)) for n in range(count)]
        pages = [await store.list(tenant, limit=size)]
        while pages[-1].next_cursor is not None:
            after = uuid.UUID(pages[-1].next_cursor)
            pages.append(await store.list(tenant, limit=size, after=after))
        seen = [entity for page in pages for entity in page.items]
        assert seen == by_id(added)
        assert len(pages) == max(1, math.ceil(count / size))
        assert all(len(page.items) == size for page in pages[:-1])
        assert all(page.next_cursor == str(page.items[-1].id) for page in pages[:-1])

    async def test_a_list_shows_only_the_callers_entities(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        mine = [await store.add(self.make(tenant_id, n)) for n in range(3)]
        other = self.new_tenant()
        theirs = [await store.add(self.make(other, n)) for n in range(2)]
        assert (await store.list(tenant_id)).items == by_id(mine)
        assert (await store.list(other)).items == by_id(theirs)
        assert (await store.list(self.new_tenant())).items == []

    async def test_a_cursor_past_the_last_entity_gives_an_empty_page(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        last = by_id([await store.add(self.make(tenant_id, n)) for n in range(2)])[-1]
        page = await store.list(tenant_id, after=last.id)
        assert page.items == []
        assert page.next_cursor is None

    async def test_each_filter_keeps_exactly_the_matching_entities(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        added = [await store.add(entity) for entity in self.variants(tenant_id)]
        await store.add(self.variants(self.new_tenant())[0])
        for name in self.filters:
            for value in {getattr(entity, name) for entity in added}:
                page = await store.list(tenant_id, filters={name: str(value)})
                assert page.items == by_id(e for e in added if getattr(e, name) == value), name

    async def test_filters_combine_as_and(self, store: Any, tenant_id: uuid.UUID) -> None:
        added = [await store.add(entity) for entity in self.variants(tenant_id)]
        first = added[0]
        both = {name: str(getattr(first, name)) for name in self.filters}
        assert (await store.list(tenant_id, filters=both)).items == [first]


class TestProjectStore(ScopedStoreContract):
    memory = MemoryProjectStore
    postgres = PostgresProjectStore
    text_field = "description"
    enum_field = "source_kind"
    unique_field = "name"
    filters = ("name", "source_kind")

    def make(self, tenant_id: uuid.UUID, n: int = 0) -> Project:
        return Project(
            id=new_id(),
            tenant_id=tenant_id,
            name=f"project-{n}",
            source="/srv/repo",
            source_kind=SourceKind.PATH,
            created_at=CREATED,
            updated_at=CREATED,
        )

    def full(self, tenant_id: uuid.UUID) -> Project:
        return Project(
            id=new_id(),
            tenant_id=tenant_id,
            name="full",
            source="https://example.com/repo.git",
            source_kind=SourceKind.URL,
            default_branch="trunk",
            quality_gates=["pytest -q", "ruff check ."],
            policy_profile="strict",
            limits=Limits(max_steps=40, max_wall_seconds=900, max_cost_usd=Decimal("2.5000001")),
            description="Ünïcode ✓ and 'quotes'",
            git_host=GitHostConfig(
                kind=GitHostKind.GITLAB,
                repository="group/sub/repo",
                token_secret="GITLAB_TOKEN",
                api_url="https://gitlab.example.com/api/v4",
                draft=False,
            ),
            created_at=CREATED,
            updated_at=LATER,
        )

    def entities(self) -> st.SearchStrategy[Project]:
        return st.builds(
            Project,
            id=st.just(new_id()),
            name=text,
            source=text,
            source_kind=st.sampled_from(SourceKind),
            default_branch=text,
            quality_gates=st.lists(text, max_size=4),
            policy_profile=text,
            limits=limits,
            description=text,
            created_at=times,
            updated_at=times,
        )

    def variants(self, tenant_id: uuid.UUID) -> list[Project]:
        kinds = [SourceKind.PATH, SourceKind.URL, SourceKind.URL]
        return [
            msgspec.structs.replace(self.make(tenant_id, n), source_kind=kind)
            for n, kind in enumerate(kinds)
        ]

    async def test_changing_a_list_that_was_read_does_not_change_the_store(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        project = await store.add(self.full(tenant_id))
        project.quality_gates.append("rm -rf /")
        fetched = await store.get(tenant_id, project.id)
        assert fetched.quality_gates == ["pytest -q", "ruff check ."]

    async def test_a_project_is_found_by_its_name_within_its_tenant(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        project = await store.add(self.full(tenant_id))
        assert await store.get_by_name(tenant_id, "full") == project
        with pytest.raises(NotFound) as raised:
            await store.get_by_name(self.new_tenant(), "full")
        assert raised.value.field == "name"
        with pytest.raises(NotFound):
            await store.get_by_name(tenant_id, "missing")


class TestTaskStore(ScopedStoreContract):
    memory = MemoryTaskStore
    postgres = PostgresTaskStore
    text_field = "title"
    enum_field = "status"
    filters = ("project_id", "status")
    project_a = new_id()
    project_b = new_id()

    def make(self, tenant_id: uuid.UUID, n: int = 0) -> Task:
        return Task(
            id=new_id(),
            tenant_id=tenant_id,
            project_id=self.project_a,
            title=f"task {n}",
            prompt="Make the tests pass.",
            created_at=CREATED,
            updated_at=CREATED,
        )

    def full(self, tenant_id: uuid.UUID) -> Task:
        return Task(
            id=new_id(),
            tenant_id=tenant_id,
            project_id=self.project_b,
            title="Fix the parser",
            prompt="The parser drops trailing commas.\nFix it.",
            acceptance_criteria=["pytest -q passes", "no new warnings"],
            status=TaskStatus.RUNNING,
            created_at=CREATED,
            updated_at=LATER,
        )

    def entities(self) -> st.SearchStrategy[Task]:
        return st.builds(
            Task,
            id=st.just(new_id()),
            project_id=st.uuids(),
            title=text,
            prompt=text,
            acceptance_criteria=st.lists(text, max_size=4),
            status=st.sampled_from(TaskStatus),
            created_at=times,
            updated_at=times,
        )

    def variants(self, tenant_id: uuid.UUID) -> list[Task]:
        shapes = [
            (self.project_a, TaskStatus.OPEN),
            (self.project_a, TaskStatus.DONE),
            (self.project_b, TaskStatus.OPEN),
            (self.project_b, TaskStatus.FAILED),
        ]
        return [
            msgspec.structs.replace(self.make(tenant_id, n), project_id=project, status=status)
            for n, (project, status) in enumerate(shapes)
        ]

    async def test_a_project_id_filter_that_is_not_a_uuid_is_refused(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        with pytest.raises(ValidationFailed) as raised:
            await store.list(tenant_id, filters={"project_id": "not-a-uuid"})
        assert raised.value.field == "project_id"

    async def test_a_status_filter_outside_the_enum_is_refused(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        with pytest.raises(ValidationFailed) as raised:
            await store.list(tenant_id, filters={"status": "bogus"})
        assert raised.value.field == "status"


class TestAgentStore(ScopedStoreContract):
    memory = MemoryAgentStore
    postgres = PostgresAgentStore
    text_field = "instructions"
    enum_field = "backend"
    unique_field = "name"
    filters = ("name", "backend", "model")

    def make(self, tenant_id: uuid.UUID, n: int = 0) -> Agent:
        return Agent(
            id=new_id(),
            tenant_id=tenant_id,
            name=f"agent-{n}",
            model="gpt-4o",
            created_at=CREATED,
            updated_at=CREATED,
        )

    def full(self, tenant_id: uuid.UUID) -> Agent:
        return Agent(
            id=new_id(),
            tenant_id=tenant_id,
            name="reviewer",
            backend=Backend.AIDER,
            model="local-qwen",
            policy_profile="acceptEdits",
            limits=Limits(max_steps=12, max_cost_usd=Decimal("0.000000123")),
            instructions="Review, then fix.",
            created_at=CREATED,
            updated_at=LATER,
        )

    def entities(self) -> st.SearchStrategy[Agent]:
        return st.builds(
            Agent,
            id=st.just(new_id()),
            name=text,
            backend=st.sampled_from(Backend),
            model=text,
            policy_profile=text,
            limits=limits,
            instructions=text,
            created_at=times,
            updated_at=times,
        )

    def variants(self, tenant_id: uuid.UUID) -> list[Agent]:
        shapes = [
            (Backend.NATIVE, "gpt-4o"),
            (Backend.AIDER, "gpt-4o"),
            (Backend.NATIVE, "local-qwen"),
        ]
        return [
            msgspec.structs.replace(self.make(tenant_id, n), backend=backend, model=model)
            for n, (backend, model) in enumerate(shapes)
        ]


class TestModelConfigStore(ScopedStoreContract):
    memory = MemoryModelConfigStore
    postgres = PostgresModelConfigStore
    text_field = "base_url"
    enum_field = "source"
    unique_field = "name"
    filters = ("name", "source")

    def make(self, tenant_id: uuid.UUID, n: int = 0) -> ModelConfig:
        return ModelConfig(
            id=new_id(),
            tenant_id=tenant_id,
            name=f"model-{n}",
            base_url="http://127.0.0.1:4000/v1",
            model="gpt-4o",
            created_at=CREATED,
            updated_at=CREATED,
        )

    def full(self, tenant_id: uuid.UUID) -> ModelConfig:
        return ModelConfig(
            id=new_id(),
            tenant_id=tenant_id,
            name="local-qwen",
            base_url="http://gpu-box:8000/v1",
            model="Qwen/Qwen2.5-Coder-32B-Instruct",
            api_key_secret="VLLM_KEY",
            input_price_per_mtok=Decimal("0.15"),
            output_price_per_mtok=Decimal("0.600000000001"),
            context_window=32_768,
            source=ModelSource.CONFIG,
            created_at=CREATED,
            updated_at=LATER,
        )

    def entities(self) -> st.SearchStrategy[ModelConfig]:
        return st.builds(
            ModelConfig,
            id=st.just(new_id()),
            name=text,
            base_url=text,
            model=text,
            api_key_secret=text,
            input_price_per_mtok=st.none() | amounts,
            output_price_per_mtok=st.none() | amounts,
            context_window=st.integers(1, 2**31 - 1),
            source=st.sampled_from(ModelSource),
            created_at=times,
            updated_at=times,
        )

    def variants(self, tenant_id: uuid.UUID) -> list[ModelConfig]:
        sources = [ModelSource.API, ModelSource.CONFIG, ModelSource.API]
        return [
            msgspec.structs.replace(self.make(tenant_id, n), source=source)
            for n, source in enumerate(sources)
        ]

    async def test_a_model_is_found_by_its_name_within_its_tenant(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        model = await store.add(self.full(tenant_id))
        assert await store.get_by_name(tenant_id, "local-qwen") == model
        with pytest.raises(NotFound) as raised:
            await store.get_by_name(self.new_tenant(), "local-qwen")
        assert raised.value.field == "name"

    async def test_a_context_window_beyond_32_bits_is_refused(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        huge = msgspec.structs.replace(self.make(tenant_id), context_window=2**31)
        with pytest.raises(ValidationFailed) as raised:
            await store.add(huge)
        assert raised.value.field == "context_window"


class TestApiKeyStore(ScopedStoreContract):
    memory = MemoryApiKeyStore
    postgres = PostgresApiKeyStore
    text_field = "name"
    enum_field = "role"
    unique_field = "prefix"
    unique_per_tenant = False
    filters = ("role",)

    def make(self, tenant_id: uuid.UUID, n: int = 0) -> ApiKey:
        return ApiKey(
            id=new_id(),
            tenant_id=tenant_id,
            name=f"key {n}",
            role=Role.MEMBER,
            prefix=fresh()[:8],
            key_hash=fresh() * 2,
            created_at=CREATED,
            updated_at=CREATED,
        )

    def full(self, tenant_id: uuid.UUID) -> ApiKey:
        return msgspec.structs.replace(
            self.make(tenant_id),
            name="ci",
            role=Role.ADMIN,
            last_used_at=LATER,
            revoked_at=LATER + timedelta(seconds=1),
            updated_at=LATER,
        )

    def entities(self) -> st.SearchStrategy[ApiKey]:
        return st.builds(
            ApiKey,
            id=st.just(new_id()),
            name=text,
            role=st.sampled_from(Role),
            prefix=text,
            key_hash=text,
            last_used_at=st.none() | times,
            revoked_at=st.none() | times,
            created_at=times,
            updated_at=times,
        )

    def variants(self, tenant_id: uuid.UUID) -> list[ApiKey]:
        roles = [Role.ADMIN, Role.MEMBER, Role.VIEWER, Role.MEMBER]
        return [
            msgspec.structs.replace(self.make(tenant_id, n), role=role)
            for n, role in enumerate(roles)
        ]

    async def test_a_key_is_found_by_its_prefix_whatever_its_tenant(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        key = await store.add(self.full(tenant_id))
        assert await store.find_by_prefix(key.prefix) == key
        assert await store.find_by_prefix(fresh()[:8]) is None
        assert await store.find_by_prefix("a\x00b") is None

    async def test_touch_records_the_latest_use_without_bumping_the_version(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        key = await store.add(self.make(tenant_id))
        await store.touch(key.id, LATER)
        await store.touch(key.id, LATER - timedelta(minutes=5))
        touched = await store.get(tenant_id, key.id)
        assert touched == msgspec.structs.replace(key, last_used_at=LATER)
        assert touched.version == 1
        assert (await store.update(self.edit(key, 1))).version == 2

    async def test_touch_of_a_missing_key_is_not_found(self, store: Any) -> None:
        with pytest.raises(NotFound):
            await store.touch(new_id(), LATER)

    async def test_touch_needs_a_time_zone(self, store: Any, tenant_id: uuid.UUID) -> None:
        key = await store.add(self.make(tenant_id))
        with pytest.raises(ValidationFailed):
            await store.touch(key.id, datetime(2024, 5, 1))

    async def test_only_keys_not_revoked_count_as_active(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        before = await store.count_active()
        keys = [await store.add(self.make(tenant_id, n)) for n in range(3)]
        await store.add(self.make(self.new_tenant()))
        assert await store.count_active() == before + 4
        await store.update(keys[0].evolve(LATER, revoked_at=LATER))
        await store.delete(tenant_id, keys[1].id)
        assert await store.count_active() == before + 2


class TestTenantStore(EntityStoreContract):
    memory = MemoryTenantStore
    postgres = PostgresTenantStore
    text_field = "name"
    unique_field = "name"
    unique_per_tenant = False
    filters = ("name",)

    def make(self, tenant_id: uuid.UUID, n: int = 0) -> Tenant:
        return Tenant(
            id=tenant_id,
            tenant_id=tenant_id,
            name=f"tenant-{n}-{fresh()}",
            created_at=CREATED,
            updated_at=CREATED,
        )

    def full(self, tenant_id: uuid.UUID) -> Tenant:
        return Tenant(
            id=tenant_id,
            tenant_id=tenant_id,
            name=f"Acme {fresh()}",
            budget_usd=Decimal("12345678.123456"),
            limits=Limits(max_steps=100, max_wall_seconds=3600, max_cost_usd=Decimal("7.5")),
            created_at=CREATED,
            updated_at=LATER,
        )

    def entities(self) -> st.SearchStrategy[Tenant]:
        return st.builds(
            Tenant,
            id=st.just(DEFAULT_TENANT_ID),
            name=text,
            budget_usd=st.none() | money,
            limits=tenant_limits,
            created_at=times,
            updated_at=times,
        )

    def identify(self, entity: Any, tenant_id: uuid.UUID) -> Any:
        name = f"{entity.name}{fresh()}"
        return msgspec.structs.replace(entity, id=tenant_id, tenant_id=tenant_id, name=name)

    def edit(self, entity: Any, n: int) -> Any:
        return entity.evolve(LATER, name=f"{entity.name} edit {n}")

    async def test_the_default_tenant_exists_from_the_start(self, store: Any) -> None:
        default = await store.get(DEFAULT_TENANT_ID, DEFAULT_TENANT_ID)
        assert default.name == "default"
        assert default.tenant_id == DEFAULT_TENANT_ID

    async def test_a_tenant_lists_only_itself(self, store: Any, tenant_id: uuid.UUID) -> None:
        mine = await store.add(self.make(tenant_id))
        await store.add(self.make(self.new_tenant()))
        assert (await store.list(tenant_id)).items == [mine]
        assert (await store.list(tenant_id, filters={"name": mine.name})).items == [mine]
        assert (await store.list(tenant_id, filters={"name": "other"})).items == []

    async def test_a_tenant_whose_tenant_id_is_not_its_id_is_refused(
        self, store: Any, tenant_id: uuid.UUID
    ) -> None:
        stray = msgspec.structs.replace(self.make(tenant_id), tenant_id=self.new_tenant())
        with pytest.raises(ValidationFailed) as raised:
            await store.add(stray)
        assert raised.value.field == "tenant_id"

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"budget_usd": Decimal("0.0000001")}, "budget_usd"),
            ({"budget_usd": Decimal("100000000")}, "budget_usd"),
            ({"budget_usd": Decimal("NaN")}, "budget_usd"),
            ({"limits": Limits(max_cost_usd=Decimal("1.1234567"))}, "limits"),
            ({"limits": Limits(max_steps=2**31)}, "limits"),
        ],
    )
    async def test_amounts_the_tenants_table_would_round_are_refused(
        self, store: Any, tenant_id: uuid.UUID, changes: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(ValidationFailed) as raised:
            await store.add(msgspec.structs.replace(self.make(tenant_id), **changes))
        assert raised.value.field == field


async def test_an_unreachable_database_is_a_dependency_unavailable() -> None:
    pool: AsyncConnectionPool = AsyncConnectionPool(
        "postgresql://nobody@127.0.0.1:1/none", min_size=1, timeout=0.5, open=False
    )
    await pool.open()
    try:
        with pytest.raises(DependencyUnavailable, match="the database is unavailable"):
            await PostgresProjectStore(pool).get(DEFAULT_TENANT_ID, new_id())
    finally:
        await pool.close()


class TestTenantLookupByName:
    """`TenantStore.get_by_name` on both adapters: global, exact, NotFound when absent."""

    @pytest.fixture(params=["memory", "postgres"])
    def store(self, request: pytest.FixtureRequest, pg_pool: Any) -> Any:
        from adapters.memory.stores import MemoryTenantStore
        from adapters.postgres.stores import PostgresTenantStore

        return MemoryTenantStore() if request.param == "memory" else PostgresTenantStore(pg_pool)

    async def test_a_tenant_is_found_by_its_name_from_any_scope(self, store: Any) -> None:
        from datetime import UTC, datetime

        from codeforge.domain.errors import NotFound
        from codeforge.domain.ids import new_id
        from codeforge.domain.tenants import Tenant

        now = datetime.now(UTC)
        tenant_id = new_id()
        name = f"acme-{tenant_id.hex[:8]}"
        await store.add(
            Tenant(id=tenant_id, tenant_id=tenant_id, name=name, created_at=now, updated_at=now)
        )
        assert (await store.get_by_name(name)).id == tenant_id
        assert (await store.get_by_name("default")).name == "default"
        with pytest.raises(NotFound):
            await store.get_by_name(name.upper())
