"""The scripted LLM server itself: what the LLM contract suite does not already show.

The contract suite drives it through the OpenAI-compatible adapter; these tests read its
wire format directly (httpx, blocking: the server runs in its own thread), and run it
standalone the way browser tests will.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.scripted_llm import (
    DEFAULT_MODEL,
    ScriptedLLM,
    Step,
    embedding,
    fail,
    reply,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def chat(server: ScriptedLLM, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    body = body or {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, headers=headers, timeout=10)


def events(response: httpx.Response) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded ("[DONE]" kept as is)."""
    found = []
    for block in response.text.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


def test_it_answers_a_blocking_client_in_another_process(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.reply(text="from a subprocess")
    program = textwrap.dedent(
        f"""
        import json, urllib.request
        body = json.dumps({{"model": "m", "messages": [{{"role": "user", "content": "x"}}]}})
        request = urllib.request.Request(
            "{scripted_llm.base_url}/chat/completions", body.encode(),
            {{"Content-Type": "application/json"}},
        )
        print(json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"])
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30
    )

    assert done.stdout.strip() == "from a subprocess", done.stderr


def test_a_whole_reply_is_an_openai_chat_completion(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.reply(text="Hi!", tool_calls=[("ls", {"path": "."})], usage=(10, 3))

    answer = chat(scripted_llm).json()

    assert answer["object"] == "chat.completion"
    assert answer["model"] == DEFAULT_MODEL
    [choice] = answer["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Hi!"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_1_0",
            "type": "function",
            "function": {"name": "ls", "arguments": '{"path": "."}'},
        }
    ]
    assert answer["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}


def test_a_stream_sends_small_pieces_then_the_finish_then_usage_then_done(
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.reply(
        text="abcdefghij", tool_calls=[("grep", '{"q": "main"}', "c9")], chunk_size=4
    )

    response = chat(
        scripted_llm,
        {
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    sent = events(response)
    deltas = [e["choices"][0]["delta"] for e in sent[:-2] if e["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas if d.get("content")] == ["abcd", "efgh", "ij"]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {
        "index": 0,
        "id": "c9",
        "type": "function",
        "function": {"name": "grep", "arguments": ""},
    }
    assert [c["function"]["arguments"] for c in calls[1:]] == ['{"q"', ': "m', 'ain"', "}"]
    assert all("id" not in c for c in calls[1:])
    finish = sent[-3]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert finish["usage"] is None
    assert sent[-2]["choices"] == []
    assert sent[-2]["usage"]["completion_tokens"] >= 1
    assert sent[-1] == "[DONE]"


def test_a_stream_carries_no_usage_unless_asked(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.reply(text="hello")

    sent = events(chat(scripted_llm, {"messages": [], "stream": True}))

    assert all("usage" not in e for e in sent if e != "[DONE]")


def test_a_step_can_force_streaming_either_way(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.reply(text="streamed", stream=True).reply(text="whole", stream=False)

    first = chat(scripted_llm)
    second = chat(scripted_llm, {"messages": [], "stream": True})

    assert first.headers["content-type"].startswith("text/event-stream")
    assert second.json()["choices"][0]["message"]["content"] == "whole"


def test_default_usage_is_plausible_and_ids_differ_between_steps(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.reply(tool_calls=[("a", {})]).reply(tool_calls=[("a", {})])
    long_prompt = {"messages": [{"role": "user", "content": "word " * 400}]}

    first = chat(scripted_llm, long_prompt).json()
    second = chat(scripted_llm).json()

    assert 450 <= first["usage"]["prompt_tokens"] <= 600  # ≈ 2,000 characters / 4
    assert first["usage"]["completion_tokens"] >= 1
    ids = [a["choices"][0]["message"]["tool_calls"][0]["id"] for a in (first, second)]
    assert ids[0] != ids[1]


def test_a_failure_step_sends_its_status_headers_and_body(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.fail(status=429, retry_after=2)
    scripted_llm.fail(status=503, body="upstream down", headers={"X-Trace": "t1"})

    limited = chat(scripted_llm)
    down = chat(scripted_llm)

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert (down.status_code, down.text, down.headers["x-trace"]) == (503, "upstream down", "t1")


def test_a_chat_request_beyond_the_script_fails_clearly(scripted_llm: ScriptedLLM) -> None:
    answer = chat(scripted_llm)

    assert answer.status_code == 500
    assert "scripted LLM: script exhausted" in answer.json()["error"]["message"]


def test_assert_script_consumed_names_the_steps_left(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.reply(text="never asked for")

    with pytest.raises(AssertionError, match="never asked for"):
        scripted_llm.assert_script_consumed()

    chat(scripted_llm)
    scripted_llm.assert_script_consumed()


def test_a_responder_reacts_to_the_request_and_its_failures_are_reported(
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.respond(lambda body: reply(text=f"{len(body['messages'])} messages"))
    scripted_llm.respond(lambda body: body["no such key"])

    counted = chat(scripted_llm).json()
    broken = chat(scripted_llm)

    assert counted["choices"][0]["message"]["content"] == "1 messages"
    assert broken.status_code == 500
    assert "responder raised" in broken.json()["error"]["message"]
    with pytest.raises(AssertionError, match="KeyError"):
        scripted_llm.assert_script_consumed()


def test_the_queue_comes_before_the_standing_responder(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.responder = lambda body: reply(text="standing")
    scripted_llm.reply(text="queued")

    answers = [chat(scripted_llm).json()["choices"][0]["message"]["content"] for _ in range(3)]

    assert answers == ["queued", "standing", "standing"]


def test_every_request_is_recorded_with_headers_and_json(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.reply(text="ok")

    chat(scripted_llm, Authorization="Bearer k", **{"X-Request-ID": "r1"})
    httpx.get(f"{scripted_llm.base_url}/models", timeout=10)

    first, second = scripted_llm.requests
    assert (first.method, first.path, first.status) == ("POST", "/v1/chat/completions", 200)
    assert first.headers["Authorization"] == "Bearer k"
    assert first.headers["X-Request-ID"] == "r1"
    assert first.json["messages"][0]["content"] == "Hi"
    assert first.step == reply(text="ok")
    assert (second.method, second.path) == ("GET", "/v1/models")
    assert scripted_llm.chat_requests == [first]


def test_a_wrong_key_is_refused_on_every_route_and_echoed(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.api_key = "sk-right"

    refused = [
        chat(scripted_llm, Authorization="Bearer sk-wrong"),
        httpx.get(f"{scripted_llm.base_url}/models", timeout=10),
        httpx.post(f"{scripted_llm.base_url}/embeddings", json={"input": "x"}, timeout=10),
    ]
    scripted_llm.reply(text="in")
    allowed = chat(scripted_llm, Authorization="Bearer sk-right")

    assert [r.status_code for r in refused] == [401, 401, 401]
    assert "sk-wrong" in refused[0].json()["error"]["message"]
    assert allowed.status_code == 200


def test_unknown_models_are_refused_only_when_asked(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.reply(text="any model goes")
    assert chat(scripted_llm, {"model": "whatever", "messages": []}).status_code == 200

    scripted_llm.reject_unknown_models = True
    refused = chat(scripted_llm, {"model": "whatever", "messages": []})

    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "model_not_found"


def test_models_are_listed_and_described_in_litellm_shape() -> None:
    prices = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "max_tokens": 8192}
    with ScriptedLLM(models={"gpt-a": prices, "gpt-b": {}}) as server:
        listed = httpx.get(f"{server.base_url}/models", timeout=10).json()
        info = httpx.get(f"{server.url}/model/info", timeout=10).json()

    assert [m["id"] for m in listed["data"]] == ["gpt-a", "gpt-b"]
    first = info["data"][0]
    assert first["model_name"] == "gpt-a"
    assert first["litellm_params"] == {"model": "gpt-a"}
    assert first["model_info"]["input_cost_per_token"] == 1e-6
    assert first["model_info"]["max_tokens"] == 8192


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_deterministic_unit_vectors_close_for_similar_texts() -> None:
    query = embedding("read the file")
    similar = embedding("readFile reads a file")
    unrelated = embedding("HTTP server configuration")

    assert embedding("read the file") == query
    assert math.isclose(math.sqrt(cosine(query, query)), 1.0)
    assert cosine(query, similar) > cosine(query, unrelated)
    assert cosine(embedding("read_file"), embedding("readFile")) == pytest.approx(1.0)
    assert len(embedding("x", 16)) == 16
    assert math.isclose(math.sqrt(cosine(embedding(""), embedding(""))), 1.0)


def test_the_embeddings_route_honours_dimensions_and_refuses_bad_input(
    scripted_llm: ScriptedLLM,
) -> None:
    url = f"{scripted_llm.base_url}/embeddings"

    answer = httpx.post(url, json={"input": ["a b", "c"], "dimensions": 8}, timeout=10).json()
    bad = httpx.post(url, json={"input": [1, 2, 3]}, timeout=10)

    assert [len(d["embedding"]) for d in answer["data"]] == [8, 8]
    assert answer["data"][0]["embedding"] == embedding("a b", 8)
    assert bad.status_code == 400


def test_other_endpoints_can_be_scripted_and_fall_back_to_normal_answers(
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.add(fail(500, endpoint="embeddings"), fail(502, endpoint="models"))
    url = f"{scripted_llm.base_url}/embeddings"

    statuses = [
        httpx.post(url, json={"input": "x"}, timeout=10).status_code,
        httpx.post(url, json={"input": "x"}, timeout=10).status_code,
        httpx.get(f"{scripted_llm.base_url}/models", timeout=10).status_code,
        httpx.get(f"{scripted_llm.base_url}/models", timeout=10).status_code,
    ]

    assert statuses == [500, 200, 502, 200]


def test_wait_for_gives_up_with_an_assertion(scripted_llm: ScriptedLLM) -> None:
    with pytest.raises(AssertionError, match="not met"):
        scripted_llm.wait_for(lambda s: len(s.requests) > 0, timeout=0.2)


def test_a_stopped_server_no_longer_answers() -> None:
    server = ScriptedLLM().start()
    url = server.base_url
    server.stop()

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=2)


def test_steps_have_a_json_form() -> None:
    assert Step.from_json({"kind": "reply", "text": "hi", "usage": [3, 1]}) == reply(
        text="hi", usage=(3, 1)
    )
    assert Step.from_json(
        {"tool_calls": [{"name": "ls", "arguments": {"p": "."}, "id": "c1"}]}
    ) == reply(tool_calls=[("ls", {"p": "."}, "c1")])
    assert Step.from_json({"kind": "fail", "status": 429, "retry_after": 1}) == fail(
        429, retry_after=1
    )
    with pytest.raises(ValueError, match="unknown step kind"):
        Step.from_json({"kind": "explode"})


def test_standalone_it_prints_its_url_and_takes_steps_over_http(tmp_path: Path) -> None:
    script = tmp_path / "steps.json"
    script.write_text(json.dumps([{"kind": "reply", "text": "from the file"}]))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_llm", "--script", str(script)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        root = base_url.removesuffix("/v1")
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")

        queued = httpx.post(
            f"{root}/_script", json=[{"kind": "reply", "text": "posted"}], timeout=10
        )
        refused = httpx.post(f"{root}/_script", json={"kind": "explode"}, timeout=10)
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        answers = [
            httpx.post(f"{base_url}/chat/completions", json=body, timeout=10).json()
            for _ in range(2)
        ]
        received = httpx.get(f"{root}/_requests", timeout=10).json()
        left = httpx.get(f"{root}/_script", timeout=10).json()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)

    assert queued.json() == {"queued": 1, "remaining": 2}
    assert refused.status_code == 400
    assert [a["choices"][0]["message"]["content"] for a in answers] == ["from the file", "posted"]
    assert [r["path"] for r in received] == ["/v1/chat/completions"] * 2
    assert received[0]["json"] == body
    assert left == {"remaining": 0}
    assert code == 0
