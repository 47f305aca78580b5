"""Runs: one attempt by an agent at a task, and the state machine it moves through.

The run's state is a fold over its events (`Run.apply`): the `runs` row is a
projection, updated in the same transaction as each append and rebuildable
from the log.

    requested --> running --> succeeded
        |           |  ^  \\--> failed / cancelled
        |           v  |
        |       awaiting_approval
        |           |
        +-----> suspended --> running (resumed) / requested (restarted)
    any non-terminal state --> failed / cancelled
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec
from msgspec import Struct

from codeforge.domain.entity import Entity
from codeforge.domain.errors import Conflict
from codeforge.domain.events import (
    ApprovalDecided,
    ApprovalRequested,
    Event,
    HeartbeatRecorded,
    ModelResponded,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunRequested,
    RunResumed,
    RunStarted,
    RunSuspended,
)
from codeforge.domain.limits import Limits


class RunStatus(StrEnum):
    REQUESTED = "requested"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUSPENDED = "suspended"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.REQUESTED: frozenset({RunStatus.RUNNING, RunStatus.SUSPENDED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.AWAITING_APPROVAL, RunStatus.SUSPENDED, RunStatus.SUCCEEDED}
    ),
    RunStatus.AWAITING_APPROVAL: frozenset({RunStatus.RUNNING, RunStatus.SUSPENDED}),
    RunStatus.SUSPENDED: frozenset({RunStatus.RUNNING, RunStatus.REQUESTED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}
# Failing or cancelling is possible from every state that has not ended.
for _status in RunStatus:
    if not _status.terminal:
        TRANSITIONS[_status] = TRANSITIONS[_status] | {RunStatus.FAILED, RunStatus.CANCELLED}


class SandboxMode(StrEnum):
    MOUNT = "mount"
    BWRAP = "bwrap"
    DOCKER = "docker"
    HYBRID = "hybrid"


class DeliverMode(StrEnum):
    PATCH = "patch"
    COMMIT_LOCAL = "commit-local"
    BRANCH = "branch"
    PR = "pr"


class RunResult(Struct, frozen=True, kw_only=True):
    outcome: str
    summary: str = ""
    artifact: dict[str, Any] = {}


class Run(Entity, frozen=True, kw_only=True):
    project_id: uuid.UUID
    task_id: uuid.UUID
    agent_id: uuid.UUID
    status: RunStatus = RunStatus.REQUESTED
    mode: SandboxMode = SandboxMode.MOUNT
    deliver: DeliverMode = DeliverMode.PATCH
    limits: Limits = Limits()
    policy_overrides: dict[str, Any] = {}
    result: RunResult | None = None
    cost_usd: Decimal = Decimal(0)
    steps: int = 0
    # Times a worker started or resumed it (the reaper gives up past a limit).
    attempts: int = 0
    last_seq: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def requested(
        cls, run_id: uuid.UUID, tenant_id: uuid.UUID, event: RunRequested, at: datetime
    ) -> Run:
        return cls(
            id=run_id,
            tenant_id=tenant_id,
            project_id=event.project_id,
            task_id=event.task_id,
            agent_id=event.agent_id,
            mode=SandboxMode(event.mode),
            deliver=DeliverMode(event.deliver),
            limits=event.limits,
            policy_overrides=event.policy_overrides,
            created_at=at,
            updated_at=at,
            last_seq=1,
        )

    def can_become(self, status: RunStatus) -> bool:
        return status in TRANSITIONS[self.status]

    def apply(self, event: Event, seq: int, at: datetime) -> Run:
        """The projection after `event` (stored at `seq`). Invalid transitions are Conflicts."""
        changes: dict[str, Any] = {"last_seq": seq, "updated_at": at}
        match event:
            case (
                RunStarted(worker=worker, lease_expires_at=expires)
                | RunResumed(worker=worker, lease_expires_at=expires)
            ):
                self._require(RunStatus.RUNNING)
                changes |= {"status": RunStatus.RUNNING, "lease_owner": worker}
                changes |= {"lease_expires_at": expires, "started_at": self.started_at or at}
                changes |= {"attempts": self.attempts + 1}
            case HeartbeatRecorded(worker=worker, lease_expires_at=expires):
                changes |= {"lease_owner": worker, "lease_expires_at": expires}
            case ModelResponded(cost_usd=cost):
                # A step is one model call; the projection's cost is the ledger's sum.
                changes |= {"steps": self.steps + 1, "cost_usd": self.cost_usd + (cost or 0)}
            case ApprovalRequested():
                self._require(RunStatus.AWAITING_APPROVAL)
                changes |= {"status": RunStatus.AWAITING_APPROVAL}
            case ApprovalDecided():
                if self.status is RunStatus.AWAITING_APPROVAL:
                    changes |= {"status": RunStatus.RUNNING}
            case RunSuspended():
                self._require(RunStatus.SUSPENDED)
                changes |= {"status": RunStatus.SUSPENDED, "lease_owner": None}
                changes |= {"lease_expires_at": None}
            case RunCompleted(summary=summary, artifact=artifact):
                self._require(RunStatus.SUCCEEDED)
                result = RunResult(outcome="succeeded", summary=summary, artifact=artifact)
                changes |= self._ended(RunStatus.SUCCEEDED, result, at)
            case RunFailed(reason=reason, detail=detail):
                self._require(RunStatus.FAILED)
                result = RunResult(outcome="failed", summary=reason, artifact={"detail": detail})
                changes |= self._ended(RunStatus.FAILED, result, at)
            case RunCancelled(reason=reason):
                self._require(RunStatus.CANCELLED)
                changes |= self._ended(
                    RunStatus.CANCELLED, RunResult(outcome="cancelled", summary=reason), at
                )
            case _:
                pass  # events that do not change the projection still advance last_seq
        return msgspec.structs.replace(self, **changes)

    def _require(self, target: RunStatus) -> None:
        if not self.can_become(target):
            raise Conflict(f"a {self.status.value} run cannot become {target.value}")

    @staticmethod
    def _ended(status: RunStatus, result: RunResult, at: datetime) -> dict[str, Any]:
        return {
            "status": status,
            "result": result,
            "finished_at": at,
            "lease_owner": None,
            "lease_expires_at": None,
        }
