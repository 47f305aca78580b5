"""Telling an approver that a run waits for them (a webhook, later chat integrations).

Contract: `notify` is best-effort and bounded in time: it raises `PortError` when the
notice could not be delivered, and the caller logs it — a run never fails because an
approver could not be told.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from msgspec import Struct

__all__ = ["ApprovalNotice", "ApprovalNotifier"]


class ApprovalNotice(Struct, frozen=True, kw_only=True):
    tenant_id: uuid.UUID
    run_id: uuid.UUID
    approval_id: str
    tool: str
    arguments: dict[str, Any] = {}
    command: str | None = None
    paths: list[str] = []
    rule: str = ""
    reason: str = ""
    timeout_s: float = 0.0
    # Where to answer: `POST {answer_url}` with {"decision": "allow"|"deny"}.
    answer_url: str = ""


class ApprovalNotifier(Protocol):
    async def notify(self, notice: ApprovalNotice) -> None: ...
