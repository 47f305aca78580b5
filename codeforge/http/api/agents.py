"""/api/v1/agents"""

from __future__ import annotations

import uuid

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from codeforge.domain.agents import Agent, Backend
from codeforge.domain.keys import Principal
from codeforge.http.api.params import Cursor, IdempotencyKey, Limit, Version, cursor_id, filters
from codeforge.http.api.routes import delete, get, patch, post
from codeforge.http.api.schemas import AgentCreate, AgentUpdate, EventList, ListPage
from codeforge.http.api.views import event_list
from codeforge.services.agents import Agents
from codeforge.services.runs import Runs


class AgentController(Controller):
    path = "/agents"
    tags = ["agents"]

    @post("/", summary="Create an agent")
    async def create(
        self,
        data: JSONBody[AgentCreate],
        agents: NamedDependency[Agents],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Agent:
        return await agents.create(principal, **data.changes())

    @get("/", summary="List agents")
    async def list_agents(
        self,
        agents: NamedDependency[Agents],
        principal: NamedDependency[Principal],
        limit: Limit = 50,
        cursor: Cursor = None,
        name: FromQuery[str | None] = None,
        backend: FromQuery[Backend | None] = None,
        model: FromQuery[str | None] = None,
    ) -> ListPage[Agent]:
        page = await agents.list(
            principal,
            limit=limit,
            after=cursor_id(cursor),
            filters=filters(name=name, backend=backend, model=model),
        )
        return ListPage(page.items, page.next_cursor)

    @get("/{agent_id:uuid}", summary="Get an agent")
    async def get_agent(
        self,
        agent_id: FromPath[uuid.UUID],
        agents: NamedDependency[Agents],
        principal: NamedDependency[Principal],
    ) -> Agent:
        return await agents.get(principal, agent_id)

    @patch("/{agent_id:uuid}", summary="Change an agent (send the version you read)")
    async def update(
        self,
        agent_id: FromPath[uuid.UUID],
        data: JSONBody[AgentUpdate],
        agents: NamedDependency[Agents],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Agent:
        return await agents.update(principal, agent_id, data.version, data.changes())

    @delete("/{agent_id:uuid}", summary="Delete an agent")
    async def remove(
        self,
        agent_id: FromPath[uuid.UUID],
        agents: NamedDependency[Agents],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        version: Version = None,
    ) -> None:
        await agents.delete(principal, agent_id, version)

    @get("/{agent_id:uuid}/events", summary="Events of every run of the agent, in stored order")
    async def events(
        self,
        agent_id: FromPath[uuid.UUID],
        runs: NamedDependency[Runs],
        principal: NamedDependency[Principal],
        after: FromQuery[int] = 0,
        limit: Limit = 200,
    ) -> EventList:
        stored = await runs.agent_events(principal, agent_id, after=after, limit=limit)
        return event_list(stored, by_position=True)
