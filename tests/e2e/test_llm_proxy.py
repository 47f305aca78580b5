"""/llm/v1: CodeForge's OpenAI-compatible proxy, driven by a real OpenAI-compatible client.

The client is CodeForge's own HTTP adapter pointed at the proxy with a run's token;
the upstream is the scripted model. Every proxied call is a model call of the run:
budgeted, settled, and recorded in the run's log.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.llm.openai import OpenAICompatibleModel
from codeforge.domain.events import RunCancelled
from codeforge.ports.events import EventContext
from codeforge.ports.llm import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    LlmAuthFailed,
    LlmError,
    ModelEndpoint,
    ToolSpec,
)
from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers, serving
from tests.e2e.test_agent_runs import PRICES
from tests.support.app_client import AppClient
from tests.support.repos import make_repo
from tests.support.scripted_llm import ScriptedLLM


async def start_run(
    client: AppClient, admin: Headers, tmp_path: Path, llm: ScriptedLLM, **run: Any
) -> dict[str, Any]:
    async def post(path: str, body: dict[str, Any]) -> Any:
        response = await client.post(path, json=body, headers=admin)
        assert response.status_code == 201, response.text
        return response.json()

    await post("/api/v1/models", {"name": "up", "base_url": llm.base_url, **PRICES})
    agent = await post("/api/v1/agents", {"name": "aider-like", "model": "up"})
    source = make_repo(tmp_path / "repo")
    project = await post("/api/v1/projects", {"name": "p", "source": str(source)})
    task = await post("/api/v1/tasks", {"project_id": project["id"], "title": "t", "prompt": "p"})
    return await post("/api/v1/runs", {"task_id": task["id"], "agent_id": agent["id"], **run})


async def token_of(runtime: Runtime, run: dict[str, Any]) -> str:
    found = await runtime.services.runs.get(_principal(run), uuid.UUID(run["id"]))
    return runtime.services.llm_proxy.token_for(found)


def _principal(run: dict[str, Any]) -> Any:
    from codeforge.domain.keys import Principal, Role

    return Principal(
        tenant_id=uuid.UUID(run["tenant_id"]), key_id=uuid.UUID(int=0), role=Role.ADMIN
    )


@pytest.fixture
async def client_model() -> Any:
    model = OpenAICompatibleModel(backoff_base=0.01)
    yield model
    await model.close()


async def test_a_proxied_call_is_answered_paid_for_and_recorded_in_the_run(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
    client_model: OpenAICompatibleModel,
) -> None:
    run = await start_run(client, admin, tmp_path, scripted_llm)
    token = await token_of(runtime, run)
    scripted_llm.reply("SEARCH/REPLACE blocks would go here", usage=(1200, 80))
    scripted_llm.reply(
        "streamed answer", tool_calls=[("lookup", {"q": "x"})], usage=(1500, 40), stream=True
    )
    async with serving(runtime) as base:
        endpoint = ModelEndpoint(base_url=f"{base}/llm/v1", model="whatever", api_key=token)
        plain = await client_model.chat(
            ChatRequest(endpoint=endpoint, messages=(ChatMessage(role="user", content="hi"),))
        )
        deltas: list[ChatDelta] = []

        async def collect(delta: ChatDelta) -> None:
            deltas.append(delta)

        streamed = await client_model.chat(
            ChatRequest(
                endpoint=endpoint,
                messages=(ChatMessage(role="user", content="again"),),
                tools=(ToolSpec(name="lookup", description="", parameters={"type": "object"}),),
            ),
            on_delta=collect,
        )
        models = await client_model.list_models(endpoint)
    assert plain.message.content == "SEARCH/REPLACE blocks would go here"
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (1200, 80)
    assert streamed.message.content == "streamed answer"
    assert [c.name for c in streamed.message.tool_calls] == ["lookup"]
    assert "".join(d.content for d in deltas) == "streamed answer"
    assert [m["id"] for m in models] == ["up"]
    # The upstream was asked for the run's model, whatever the client named.
    assert {r.json["model"] for r in scripted_llm.chat_requests} == {"up"}
    assert all(r.json["max_tokens"] <= 4096 for r in scripted_llm.chat_requests)

    events = (await client.get(f"/api/v1/runs/{run['id']}/events", headers=admin)).json()["items"]
    responded = [e["data"] for e in events if e["type"] == "ModelResponded"]
    assert [r["content"] for r in responded] == [
        "SEARCH/REPLACE blocks would go here",
        "streamed answer",
    ]
    expected = Decimal("2.5") * 1200 / 10**6 + Decimal(10) * 80 / 10**6
    assert Decimal(responded[0]["cost_usd"]) == expected
    got = (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()
    assert got["steps"] == 2
    assert Decimal(got["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in responded)


async def test_the_proxy_refuses_bad_tokens_ended_runs_and_spent_budgets(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
    client_model: OpenAICompatibleModel,
) -> None:
    run = await start_run(client, admin, tmp_path, scripted_llm, limits={"max_cost_usd": "0.0001"})
    token = await token_of(runtime, run)
    async with serving(runtime) as base:
        url = f"{base}/llm/v1/chat/completions"
        body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as http:
            for bad in [
                "",
                "Bearer nope",
                f"Bearer {token[:-2]}xx",
                "Bearer cfr_" + "0" * 64 + ".x",
            ]:
                async with http.post(url, json=body, headers={"Authorization": bad}) as r:
                    assert r.status == 401, bad
                    assert (await r.json())["error"]["code"] == "invalid_api_key"
            headers = {"Authorization": f"Bearer {token}"}
            async with http.post(url, json=body, headers=headers) as r:
                assert r.status == 402
                assert "budget" in (await r.json())["error"]["message"]
            async with http.post(url, data=b"{not json", headers=headers) as r:
                assert r.status == 400
        with pytest.raises(LlmAuthFailed):
            await client_model.chat(
                ChatRequest(
                    endpoint=ModelEndpoint(base_url=f"{base}/llm/v1", model="m", api_key="cfr_bad"),
                    messages=(ChatMessage(role="user", content="x"),),
                )
            )
        store = await runtime.container.event_store()
        current = await runtime.services.runs.get(_principal(run), uuid.UUID(run["id"]))
        await store.append(
            current.id,
            [RunCancelled(reason="done")],
            expected_seq=current.last_seq,
            context=EventContext(tenant_id=current.tenant_id),
        )
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 409
                assert (await r.json())["error"]["code"] == "run_ended"
    assert scripted_llm.chat_requests == []


async def test_an_upstream_failure_reaches_the_client_as_an_openai_error(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
    client_model: OpenAICompatibleModel,
) -> None:
    run = await start_run(client, admin, tmp_path, scripted_llm)
    token = await token_of(runtime, run)
    from tests.support.scripted_llm import CONTEXT_TOO_LONG

    scripted_llm.fail(400, body=CONTEXT_TOO_LONG)
    async with serving(runtime) as base:
        with pytest.raises(LlmError) as caught:
            await client_model.chat(
                ChatRequest(
                    endpoint=ModelEndpoint(base_url=f"{base}/llm/v1", model="m", api_key=token),
                    messages=(ChatMessage(role="user", content="long"),),
                )
            )
    assert "maximum context length" in str(caught.value)
    report = (await client.get("/api/v1/costs?group=run", headers=admin)).json()
    mine = [t for t in report["totals"] if t["key"] == run["id"]]
    assert not mine or (Decimal(mine[0]["held_usd"]), Decimal(mine[0]["cost_usd"])) == (0, 0)
