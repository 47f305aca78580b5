"""The aider backend's small parts: where the proxy socket goes, what its watcher sees,
which files a task names, and how a turn's change is shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from codeforge.agent.backends.aider import _MENTION, _diff
from codeforge.agent.backends.proxy_watch import CallOutcome, CallRefused, ProxyWatch
from codeforge.http.llm_socket import MAX_SOCKET_PATH, socket_path, watched

pytestmark = pytest.mark.unit


def test_the_socket_is_per_process_under_the_data_dir_or_in_tmp_when_too_long() -> None:
    assert socket_path(Path("/srv/cf"), "", pid=42) == Path("/srv/cf/run/llm-proxy-42.sock")
    deep = Path("/srv/" + "d" * 120)
    fallback = socket_path(deep, "", pid=42)
    assert fallback.name == "llm-proxy-42.sock"
    assert fallback.parent.name == f"codeforge-{os.getuid()}"
    assert len(os.fsencode(fallback)) <= MAX_SOCKET_PATH
    assert socket_path(deep, "/run/cf/proxy.sock") == Path("/run/cf/proxy.sock")


class Recorder:
    def __init__(self, refuse: CallRefused | None = None) -> None:
        self.refuse = refuse
        self.before = 0
        self.outcomes: list[CallOutcome] = []

    async def before_call(self) -> None:
        self.before += 1
        if self.refuse is not None:
            raise self.refuse

    async def after_call(self, outcome: CallOutcome) -> None:
        self.outcomes.append(outcome)


def app_answering(status: int, *pieces: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def call(app: Any, token: str, path: str = "/llm/v1/chat/completions") -> list[Any]:
    sent: list[Any] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }

    async def receive() -> Any:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_the_watcher_sees_each_chat_call_of_its_token_and_its_error() -> None:
    watch = ProxyWatch()
    recorder = Recorder()
    budget = b'{"error": {"message": "the run budget is spent", "code": "budget_exceeded"}}'
    app = watched(app_answering(402, budget), watch)
    with watch.watching("cfr_a", recorder):
        await call(app, "cfr_a")
        await call(app, "cfr_other")  # another run's token: not this watcher's
        await call(app, "cfr_a", "/llm/v1/models")  # not a chat call
    await call(app, "cfr_a")  # no longer watched
    assert recorder.before == 1
    [outcome] = recorder.outcomes
    assert (outcome.status, outcome.error_code) == (402, "budget_exceeded")
    assert outcome.error_message == "the run budget is spent"
    assert outcome.failed


async def test_an_error_inside_a_stream_is_seen_and_a_clean_stream_is_not_an_error() -> None:
    watch = ProxyWatch()
    recorder = Recorder()
    error = b'data: {"error": {"message": "upstream down", "code": "upstream_unavailable"}}\n\n'
    with watch.watching("t", recorder):
        await call(watched(app_answering(200, b'data: {"id": 1}\n\n', error), watch), "t")
        await call(
            watched(app_answering(200, b'data: {"id": 1}\n\n', b"data: [DONE]\n\n"), watch), "t"
        )
    assert [(o.status, o.error_code) for o in recorder.outcomes] == [
        (200, "upstream_unavailable"),
        (200, None),
    ]
    assert not recorder.outcomes[1].failed


async def test_a_refused_call_is_answered_in_openais_error_shape_without_forwarding() -> None:
    watch = ProxyWatch()
    recorder = Recorder(CallRefused(403, "run_stopping", "a denied path ended the run"))
    forwarded: list[Any] = []

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        forwarded.append(scope)

    with watch.watching("t", recorder):
        sent = await call(watched(upstream, watch), "t")
    assert forwarded == []
    assert sent[0]["status"] == 403
    body = msgspec.json.decode(sent[1]["body"])
    assert body["error"]["code"] == "run_stopping"
    assert body["error"]["message"] == "a denied path ended the run"
    assert recorder.outcomes[0].error_code == "run_stopping"


def test_files_a_task_names_are_found_in_its_text() -> None:
    text = "Fix add() in calc.py and ./src/app/main.py (see README.md), e.g. like v1.2 did."
    assert [m.group(1).removeprefix("./") for m in _MENTION.finditer(text)] == [
        "calc.py",
        "src/app/main.py",
        "README.md",
        # Candidates only: the backend keeps the names that are files in the workspace.
        "e.g",
        "v1.2",
    ]


def test_a_turns_change_is_shown_as_a_diff_new_deleted_and_binary_files_included() -> None:
    assert "+x = 1" in _diff("a.py", None, b"x = 1\n")
    assert "--- /dev/null" in _diff("a.py", None, b"x = 1\n")
    assert "+++ /dev/null" in _diff("a.py", b"x = 1\n", None)
    changed = _diff("a.py", b"x = 1\n", b"x = 2\n")
    assert "-x = 1" in changed
    assert "+x = 2" in changed
    assert _diff("blob.bin", b"\0\1", b"\0\2") == "Binary file blob.bin changed\n"
