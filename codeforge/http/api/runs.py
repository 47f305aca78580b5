"""/api/v1/runs — start runs, read them and their events, live or not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, WebSocket, websocket
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from codeforge.domain.keys import Principal
from codeforge.domain.runs import Run, RunStatus
from codeforge.http.api.params import Cursor, IdempotencyKey, Limit, cursor_id, filters
from codeforge.http.api.routes import get, post
from codeforge.http.api.schemas import (
    ApprovalAnswerBody,
    EventList,
    ListPage,
    RunCancel,
    RunCreate,
    RunForkBody,
    RunPause,
    RunRewindBody,
)
from codeforge.http.api.views import event_list, event_view
from codeforge.ports.artifacts import ArtifactInfo
from codeforge.services.approvals import Approval, RunApprovals
from codeforge.services.artifacts import Artifacts
from codeforge.services.event_streams import EventStreams, Heartbeat, LiveDelta, StatusChange
from codeforge.services.run_history import RewindPlan, RunHistory
from codeforge.services.runs import Runs

LastEventId = Annotated[
    int | None,
    HeaderParameter(
        name="Last-Event-ID",
        required=False,
        description="Resume after this seq (browsers send it on reconnect).",
    ),
]


class RunController(Controller):
    path = "/runs"
    tags = ["runs"]

    @post("/", summary="Start a run of an agent on a task")
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RunCreate],
        runs: NamedDependency[Runs],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Run:
        return await runs.start(
            principal,
            task_id=data.task_id,
            agent_id=data.agent_id,
            mode=data.mode,
            deliver=data.deliver,
            limits=data.limits,
            policy_overrides=data.policy_overrides,
            request_id=request.scope["state"].get("request_id"),
        )

    @get("/", summary="List runs")
    async def list_runs(
        self,
        runs: NamedDependency[Runs],
        principal: NamedDependency[Principal],
        limit: Limit = 50,
        cursor: Cursor = None,
        status: FromQuery[RunStatus | None] = None,
        task_id: FromQuery[uuid.UUID | None] = None,
        agent_id: FromQuery[uuid.UUID | None] = None,
        project_id: FromQuery[uuid.UUID | None] = None,
    ) -> ListPage[Run]:
        page = await runs.list(
            principal,
            limit=limit,
            after=cursor_id(cursor),
            filters=filters(
                status=status, task_id=task_id, agent_id=agent_id, project_id=project_id
            ),
        )
        return ListPage(page.items, page.next_cursor)

    @post(
        "/{run_id:uuid}/cancel",
        status_code=202,
        summary="Cancel a run",
        description=(
            "A waiting run is cancelled at once; a running one is told through its worker, "
            "which stops it within a second (watch the events). An ended run is 409."
        ),
    )
    async def cancel(
        self,
        run_id: FromPath[uuid.UUID],
        runs: NamedDependency[Runs],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        data: JSONBody[RunCancel | None] = None,
    ) -> Run:
        return await runs.cancel(principal, run_id, data.reason if data else "")

    @post(
        "/{run_id:uuid}/pause",
        status_code=202,
        summary="Pause a run (suspend it until resumed)",
        description=(
            "A waiting run is suspended at once; a running one by its worker, within a "
            "second (its model call or command is stopped, and on resume the model is told)."
        ),
    )
    async def pause(
        self,
        run_id: FromPath[uuid.UUID],
        history: NamedDependency[RunHistory],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        data: JSONBody[RunPause | None] = None,
    ) -> Run:
        return await history.pause(principal, run_id, data.reason if data else "")

    @post("/{run_id:uuid}/resume", status_code=202, summary="Resume a suspended run")
    async def resume(
        self,
        run_id: FromPath[uuid.UUID],
        history: NamedDependency[RunHistory],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Run:
        return await history.resume(principal, run_id)

    @post(
        "/{run_id:uuid}/rewind",
        status_code=200,
        summary="Take a suspended run back to one of its events (files and conversation)",
        description=(
            "With `dry_run`, only says which files would be written and deleted. Otherwise "
            "records the rewind and queues the run: the worker that resumes it restores the "
            "files and continues the conversation from there."
        ),
    )
    async def rewind(
        self,
        run_id: FromPath[uuid.UUID],
        data: JSONBody[RunRewindBody],
        history: NamedDependency[RunHistory],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> RewindPlan:
        return await history.rewind(principal, run_id, data.to_seq, dry_run=data.dry_run)

    @post(
        "/{run_id:uuid}/fork",
        summary="Start a new run that continues this one from one of its events",
    )
    async def fork(
        self,
        run_id: FromPath[uuid.UUID],
        data: JSONBody[RunForkBody],
        history: NamedDependency[RunHistory],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Run:
        return await history.fork(
            principal, run_id, data.at_seq, mode=data.mode, deliver=data.deliver, limits=data.limits
        )

    @post(
        "/{run_id:uuid}/replay",
        summary="Re-execute a run with its recorded model responses, reporting differences",
    )
    async def replay(
        self,
        run_id: FromPath[uuid.UUID],
        history: NamedDependency[RunHistory],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Run:
        return await history.replay(principal, run_id)

    @get("/{run_id:uuid}", summary="Get a run (its projection: status, counters, cost, lease)")
    async def get_run(
        self,
        run_id: FromPath[uuid.UUID],
        runs: NamedDependency[Runs],
        principal: NamedDependency[Principal],
    ) -> Run:
        return await runs.get(principal, run_id)

    @get("/{run_id:uuid}/approvals", summary="The run's asks: pending and decided")
    async def approvals(
        self,
        run_id: FromPath[uuid.UUID],
        approvals: NamedDependency[RunApprovals],
        principal: NamedDependency[Principal],
    ) -> list[Approval]:
        return await approvals.list(principal, run_id)

    @post(
        "/{run_id:uuid}/approvals/{approval_id:str}",
        status_code=202,
        summary="Answer an ask: allow or deny, once or for the rest of the run",
        description=(
            "The answer reaches the worker holding the run within a second; watch for "
            "`ApprovalDecided` in the events. An approval already decided (or denied by "
            "its timeout) is 409."
        ),
    )
    async def answer(
        self,
        run_id: FromPath[uuid.UUID],
        approval_id: FromPath[str],
        data: JSONBody[ApprovalAnswerBody],
        approvals: NamedDependency[RunApprovals],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Approval:
        return await approvals.answer(
            principal,
            run_id,
            approval_id,
            allow=data.decision == "allow",
            scope=data.scope,
            reason=data.reason,
        )

    @get("/{run_id:uuid}/artifacts", summary="What the run delivered (without content)")
    async def artifacts(
        self,
        run_id: FromPath[uuid.UUID],
        artifacts: NamedDependency[Artifacts],
        principal: NamedDependency[Principal],
    ) -> list[ArtifactInfo]:
        return await artifacts.list(principal, run_id)

    @get(
        "/{run_id:uuid}/artifacts/{name:str}",
        summary="Download an artifact (`patch`: the run's unified diff)",
        media_type="application/octet-stream",
        responses={200: ResponseSpec(data_container=bytes, description="The artifact")},
    )
    async def artifact(
        self,
        run_id: FromPath[uuid.UUID],
        name: FromPath[str],
        artifacts: NamedDependency[Artifacts],
        principal: NamedDependency[Principal],
    ) -> Response[bytes]:
        found = await artifacts.get(principal, run_id, name)
        filename = f"run-{run_id}.{'diff' if name == 'patch' else name}"
        return Response(
            found.content,
            media_type=found.info.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "ETag": f'"{found.info.sha256}"',
            },
        )

    @get("/{run_id:uuid}/events", summary="Stored events of a run after a seq")
    async def events(
        self,
        run_id: FromPath[uuid.UUID],
        runs: NamedDependency[Runs],
        principal: NamedDependency[Principal],
        after: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 1000,
    ) -> EventList:
        await runs.get(principal, run_id)
        return event_list(await runs.events(principal, run_id, after=after, limit=limit))

    @get(
        "/{run_id:uuid}/events/stream",
        summary="Live events (SSE); resumes after Last-Event-ID",
        description=(
            "Stored events carry `id: <seq>`; `event: delta` messages (model tokens, "
            "command output as produced) carry no id and are never replayed; heartbeats "
            "are comments. The stream ends once the run has ended and every event was sent."
        ),
    )
    async def stream(
        self,
        run_id: FromPath[uuid.UUID],
        runs: NamedDependency[Runs],
        streams: NamedDependency[EventStreams],
        principal: NamedDependency[Principal],
        last_event_id: LastEventId = None,
        after: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> ServerSentEvent:
        await runs.get(principal, run_id)  # 404 before the stream starts
        start = last_event_id if last_event_id is not None else after
        return ServerSentEvent(_sse(streams.run_events(principal, run_id, start)))

    @websocket("/{run_id:uuid}/events/ws")
    async def socket(
        self,
        socket: WebSocket[Any, Any, Any],
        run_id: FromPath[uuid.UUID],
        runs: NamedDependency[Runs],
        streams: NamedDependency[EventStreams],
        after: FromQuery[int] = 0,
    ) -> None:
        """The same events as the SSE stream, as JSON messages; `after` resumes."""
        principal: Principal = socket.scope["state"]["principal"]
        await socket.accept()
        try:
            await runs.get(principal, run_id)
        except Exception:
            await socket.close(code=4404, reason="run not found")
            return
        async for item in streams.run_events(principal, run_id, after):
            if isinstance(item, Heartbeat):
                await socket.send_json({"type": "heartbeat"})
            elif isinstance(item, LiveDelta):
                await socket.send_text(
                    msgspec.json.encode({"type": "delta", "delta": item}).decode()
                )
            else:
                await socket.send_text(
                    msgspec.json.encode({"type": "event", "event": event_view(item)}).decode()
                )
        await socket.close(code=1000, reason="run ended")


class TenantStreamController(Controller):
    path = "/events"
    tags = ["events"]

    @get(
        "/stream",
        summary="Status changes of the tenant's runs, tasks and agents (SSE)",
        description="For dashboards: `event: status` messages; heartbeats are comments.",
    )
    async def stream(
        self, streams: NamedDependency[EventStreams], principal: NamedDependency[Principal]
    ) -> ServerSentEvent:
        return ServerSentEvent(_status_sse(streams.tenant_changes(principal)))


async def _sse(items: AsyncIterator[Any]) -> AsyncIterator[ServerSentEventMessage]:
    async for item in items:
        if isinstance(item, Heartbeat):
            yield ServerSentEventMessage(comment="heartbeat", data=None)
        elif isinstance(item, LiveDelta):
            # No id: deltas are live only, and a reconnect resumes after stored events.
            yield ServerSentEventMessage(data=msgspec.json.encode(item).decode(), event="delta")
        else:
            view = event_view(item)
            yield ServerSentEventMessage(
                data=msgspec.json.encode(view).decode(), event=view.type, id=str(view.seq)
            )


async def _status_sse(
    items: AsyncIterator[StatusChange | Heartbeat],
) -> AsyncIterator[ServerSentEventMessage]:
    async for item in items:
        if isinstance(item, Heartbeat):
            yield ServerSentEventMessage(comment="heartbeat", data=None)
        else:
            yield ServerSentEventMessage(data=msgspec.json.encode(item).decode(), event="status")
