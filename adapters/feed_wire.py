"""The compact form of a feed notice on the wire (NOTIFY payloads, NATS messages).

`{"t": tenant, "k": "run_event"|"status"|"delta", "r": run, "s": seq, "e": entity,
"i": id, "st": status, "sm": stream, "c": call id, "x": text}`, empty fields left out:
well under 300 bytes, never a stored event; a delta's text is at most
`MAX_DELTA_CHARS` characters (at most 6 bytes each once escaped).
"""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

from codeforge.ports.events import DeltaStream, FeedNotice


class _Wire(msgspec.Struct, frozen=True, omit_defaults=True):
    t: uuid.UUID
    k: Literal["run_event", "status", "delta"]
    r: uuid.UUID | None = None
    s: int | None = None
    e: Literal["run", "task", "agent"] | None = None
    i: uuid.UUID | None = None
    st: str | None = None
    sm: DeltaStream | None = None
    c: str | None = None
    x: str | None = None


_decoder = msgspec.json.Decoder(_Wire)


def encode(notice: FeedNotice) -> bytes:
    wire = _Wire(
        t=notice.tenant_id,
        k=notice.kind,
        r=notice.run_id,
        s=notice.seq,
        e=notice.entity,
        i=notice.entity_id,
        st=notice.status,
        sm=notice.stream,
        c=notice.call_id,
        x=notice.text,
    )
    return msgspec.json.encode(wire)


def decode_notice(payload: str | bytes) -> FeedNotice:
    """The notice in a payload; `msgspec.ValidationError` (or DecodeError) if it is not one."""
    wire = _decoder.decode(payload)
    return FeedNotice(
        tenant_id=wire.t,
        kind=wire.k,
        run_id=wire.r,
        seq=wire.s,
        entity=wire.e,
        entity_id=wire.i,
        status=wire.st,
        stream=wire.sm,
        call_id=wire.c,
        text=wire.x,
    )
