"""/api/v1/admin/dlq — messages the queue gave up on: list, read, replay.

For the installation's operators only (admins of the default tenant): dead letters hold
messages of every tenant. See `codeforge.services.dead_letters`.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from msgspec import Struct

from codeforge.domain.keys import Principal
from codeforge.http.api.params import Cursor, IdempotencyKey, Limit, cursor_id
from codeforge.http.api.routes import get, post
from codeforge.http.api.schemas import ListPage
from codeforge.ports.dead_letters import StoredDeadLetter
from codeforge.services.dead_letters import DeadLetters

SubjectFilter = Annotated[
    str | None,
    Parameter(
        description=(
            "Only the dead letters of this original subject; `*` stands for one token "
            "(`runs.control.*`)."
        )
    ),
]


class DeadLetterView(Struct, frozen=True, kw_only=True):
    """A dead letter as the API shows it.

    The original body is kept byte for byte and may not be text at all (reason
    `invalid_payload`), so it is given twice: `payload_text` to read (UTF-8, undecodable
    bytes shown as U+FFFD) and `payload_base64`, the exact bytes.
    """

    id: uuid.UUID
    # The subject the message was published to (its dead letter went to "<subject>.dlq").
    subject: str
    payload_text: str
    payload_base64: str
    headers: dict[str, str]
    reason: Literal["handler_failed", "invalid_payload"]
    error: str
    # Deliveries before the queue gave up.
    attempts: int
    consumer: str
    failed_at: datetime
    recorded_at: datetime
    replayed_at: datetime | None
    replay_count: int

    @classmethod
    def of(cls, stored: StoredDeadLetter) -> DeadLetterView:
        return cls(
            id=stored.id,
            subject=stored.subject,
            payload_text=stored.payload.decode("utf-8", errors="replace"),
            payload_base64=base64.b64encode(stored.payload).decode("ascii"),
            headers=stored.headers,
            reason=stored.reason,
            error=stored.error,
            attempts=stored.attempts,
            consumer=stored.consumer,
            failed_at=stored.failed_at,
            recorded_at=stored.recorded_at,
            replayed_at=stored.replayed_at,
            replay_count=stored.replay_count,
        )


class DeadLetterController(Controller):
    path = "/admin/dlq"
    tags = ["admin"]

    @get("/", summary="List dead letters, newest failure first (default-tenant admins)")
    async def list_dead_letters(
        self,
        dead_letters: NamedDependency[DeadLetters],
        principal: NamedDependency[Principal],
        limit: Limit = 50,
        cursor: Cursor = None,
        subject: SubjectFilter = None,
    ) -> ListPage[DeadLetterView]:
        page = await dead_letters.list(
            principal, limit=limit, after=cursor_id(cursor), subject=subject
        )
        return ListPage([DeadLetterView.of(x) for x in page.items], page.next_cursor)

    @get("/{letter_id:uuid}", summary="Get a dead letter")
    async def get_dead_letter(
        self,
        letter_id: FromPath[uuid.UUID],
        dead_letters: NamedDependency[DeadLetters],
        principal: NamedDependency[Principal],
    ) -> DeadLetterView:
        return DeadLetterView.of(await dead_letters.get(principal, letter_id))

    @post(
        "/{letter_id:uuid}/replay",
        status_code=200,
        summary="Publish a dead letter's original message again",
        description=(
            "Publishes the original payload to the original subject with the original "
            "headers (minus Retry-Count) and returns the letter with its replay noted. "
            "A payload that can never be delivered (it does not decode) is 422."
        ),
    )
    async def replay(
        self,
        letter_id: FromPath[uuid.UUID],
        dead_letters: NamedDependency[DeadLetters],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> DeadLetterView:
        return DeadLetterView.of(await dead_letters.replay(principal, letter_id))
