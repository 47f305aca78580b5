"""Model health and import, end to end through the API against the scripted LLM server.

- `POST /api/v1/models/{id}/check` makes one real, minimal chat call and reports latency
  or a clear error (HTTP 200 either way: the model's failure is the answer);
- `/health/ready` shows the config file's models from background checks (a free model
  list per endpoint), never calling a model per probe, and a model that is down leaves
  the service ready (`degraded`);
- `POST /api/v1/models/import` registers what a LiteLLM proxy serves, with its prices,
  never touching a model from the config file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from codeforge.container import Container
from codeforge.domain.keys import Role
from codeforge.http.app import create_app
from codeforge.runtime import Runtime
from codeforge.settings import LlmSettings, ModelSettings
from tests.e2e.conftest import Headers, api_settings
from tests.support.app_client import AppClient
from tests.support.processes import free_port
from tests.support.scripted_llm import ScriptedLLM

Started = tuple[Runtime, AppClient, Headers]


@pytest.fixture
async def start(
    make_database: Callable[[], str], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """Starts CodeForge (no worker) with the given settings; stopped after the test."""
    started: list[Runtime] = []

    async def run(**overrides: Any) -> Started:
        settings = api_settings(make_database(), tmp_path / f"data{len(started)}", **overrides)
        runtime = Runtime(Container(settings=settings))
        started.append(runtime)
        await runtime.start(with_worker=False)
        assert runtime.admin_key_file is not None
        admin = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
        return runtime, AppClient(app=create_app(runtime)), admin

    yield run
    for runtime in started:
        await runtime.stop("test finished")


async def register(client: AppClient, admin: Headers, **model: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/models", json=model, headers=admin)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


# ---------------------------------------------------------------------------- checks


async def test_checking_a_model_makes_one_minimal_call_and_reports_its_latency(
    start: Callable[..., Any], scripted_llm: ScriptedLLM
) -> None:
    _, client, admin = await start(llm=LlmSettings(health_interval=0))
    async with client:
        model = await register(
            client, admin, name="scripted", base_url=scripted_llm.base_url, model="scripted-model"
        )
        scripted_llm.reply("OK", usage=(12, 1))

        response = await client.post(f"/api/v1/models/{model['id']}/check", headers=admin)

        assert response.status_code == 200, response.text
        check = response.json()
        assert check["status"] == "up"
        assert check["method"] == "chat"
        assert check["name"] == "scripted"
        assert check["error"] is None
        assert check["latency_ms"] > 0
        assert "'OK'" in check["detail"]
        [sent] = scripted_llm.chat_requests
        assert sent.json["max_tokens"] == 1
        assert [m["role"] for m in sent.json["messages"]] == ["user"]
        assert sent.json["model"] == "scripted-model"
        listed = (await client.get("/api/v1/models/health", headers=admin)).json()["items"]
        assert listed == [check]


async def test_a_model_that_fails_its_check_is_reported_down_with_a_clear_error(
    start: Callable[..., Any], scripted_llm: ScriptedLLM
) -> None:
    runtime, client, admin = await start(llm=LlmSettings(health_interval=0))
    scripted_llm.api_key = "sk-right-one-123"
    runtime.services.secrets.set("WRONG_KEY", "sk-wrong-one-456")
    async with client:
        wrong = await register(
            client,
            admin,
            name="wrong-key",
            base_url=scripted_llm.base_url,
            api_key_secret="WRONG_KEY",
        )
        missing = await register(
            client, admin, name="no-key", base_url=scripted_llm.base_url, api_key_secret="NOPE"
        )
        dead = await register(
            client, admin, name="dead", base_url=f"http://127.0.0.1:{free_port()}/v1"
        )

        answers = {}
        for model in (wrong, missing, dead):
            response = await client.post(f"/api/v1/models/{model['id']}/check", headers=admin)
            assert response.status_code == 200, response.text
            answers[model["name"]] = response.json()

        assert {a["status"] for a in answers.values()} == {"down"}
        assert "refused the credentials (HTTP 401)" in answers["wrong-key"]["error"]
        assert "sk-wrong-one-456" not in str(answers)
        assert "secret NOPE is not set" in answers["no-key"]["error"]
        assert "could not be reached" in answers["dead"]["error"]
        assert scripted_llm.chat_requests[0].json["max_tokens"] == 1

        viewer_key = await runtime.services.api_keys.create_for_tenant_name(
            name="viewer", role=Role.VIEWER, tenant="default"
        )
        viewer = {"Authorization": f"Bearer {viewer_key.secret}"}
        refused = await client.post(f"/api/v1/models/{wrong['id']}/check", headers=viewer)
        assert refused.status_code == 403
        unknown = await client.post(
            "/api/v1/models/01900000-0000-7000-8000-000000000000/check", headers=admin
        )
        assert unknown.status_code == 404


# ---------------------------------------------------------------------------- readiness


async def test_readiness_shows_config_models_from_background_checks_without_calling_them(
    start: Callable[..., Any], scripted_llm: ScriptedLLM
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/v1"
    runtime, client, _ = await start(
        llm=LlmSettings(health_interval=3600, health_timeout=2),
        models=[
            ModelSettings(name="cfg", base_url=scripted_llm.base_url, model="scripted-model"),
            ModelSettings(name="cfg-alias", base_url=scripted_llm.base_url, model="not-listed"),
            ModelSettings(name="ghost", base_url=dead_url),
        ],
    )
    async with client:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            ready = await client.get("/health/ready")
            models = ready.json()["checks"]["models"]
            if models["status"] == "down":
                break
            assert asyncio.get_running_loop().time() < deadline, models
            await asyncio.sleep(0.05)

        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.json()["degraded"] == ["models"]
        assert models["error"].startswith("ModelsDown: ghost: ")
        assert "could not be reached" in models["error"]
        assert "cfg" not in models["error"]
        # One model list per endpoint, no chat call, and none per probe.
        seen = len(scripted_llm.requests)
        assert [r.path for r in scripted_llm.requests] == ["/v1/models"]
        for _ in range(5):
            await client.get("/health/ready")
        assert len(scripted_llm.requests) == seen
        assert scripted_llm.chat_requests == []

        assert runtime.admin_key_file is not None
        admin = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
        health = (await client.get("/api/v1/models/health", headers=admin)).json()["items"]
        by_name = {h["name"]: h for h in health}
        assert by_name["cfg"]["status"] == "up"
        assert by_name["cfg"]["method"] == "list"
        assert by_name["cfg-alias"]["status"] == "up"
        assert "does not list 'not-listed'" in by_name["cfg-alias"]["detail"]
        assert by_name["ghost"]["status"] == "down"


async def test_readiness_says_when_config_models_were_not_checked_yet(
    start: Callable[..., Any], scripted_llm: ScriptedLLM
) -> None:
    _, client, _ = await start(
        llm=LlmSettings(health_interval=0),
        models=[ModelSettings(name="cfg", base_url=scripted_llm.base_url)],
    )
    async with client:
        ready = await client.get("/health/ready")
    assert ready.json()["checks"]["models"]["status"] == "up"
    assert ready.json()["checks"]["models"]["detail"] == "1 model(s), not checked yet"
    assert scripted_llm.requests == []


# ---------------------------------------------------------------------------- import


async def test_import_registers_a_litellm_proxys_chat_models_with_their_prices(
    start: Callable[..., Any], scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.api_key = "sk-proxy-key-789"
    scripted_llm.models = {
        "gpt-a": {
            "input_cost_per_token": 2.5e-06,
            "output_cost_per_token": 1e-05,
            "max_input_tokens": 64000,
        },
        "cfg": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
        "embed-b": {"mode": "embedding"},
        "local-free": {},
    }
    runtime, client, admin = await start(
        llm=LlmSettings(
            base_url=scripted_llm.base_url, api_key_secret="PROXY_KEY", health_interval=0
        ),
        models=[ModelSettings(name="cfg", base_url="http://127.0.0.1:9/v1")],
    )
    runtime.services.secrets.set("PROXY_KEY", "sk-proxy-key-789")
    async with client:
        response = await client.post("/api/v1/models/import", headers=admin)

        assert response.status_code == 200, response.text
        report = response.json()
        assert report["source"] == scripted_llm.base_url
        assert report["created"] == ["gpt-a", "local-free"]
        assert report["updated"] == []
        skipped = {s["name"]: s["reason"] for s in report["skipped"]}
        assert "configuration file" in skipped["cfg"]
        assert "embedding" in skipped["embed-b"]
        listed = (await client.get("/api/v1/models", headers=admin)).json()["items"]
        by_name = {m["name"]: m for m in listed}
        gpt = by_name["gpt-a"]
        assert gpt["base_url"] == scripted_llm.base_url
        assert gpt["model"] == "gpt-a"
        assert gpt["api_key_secret"] == "PROXY_KEY"
        assert (Decimal(gpt["input_price_per_mtok"]), Decimal(gpt["output_price_per_mtok"])) == (
            Decimal("2.5"),
            Decimal("10"),
        )
        assert gpt["context_window"] == 64000
        assert gpt["source"] == "api"
        assert by_name["local-free"]["input_price_per_mtok"] is None
        assert by_name["cfg"]["base_url"] == "http://127.0.0.1:9/v1"  # never clobbered
        assert by_name["cfg"]["source"] == "config"

        again = (await client.post("/api/v1/models/import", headers=admin)).json()
        assert (again["created"], again["unchanged"]) == ([], ["gpt-a", "local-free"])
        scripted_llm.models["gpt-a"]["output_cost_per_token"] = 2e-05
        changed = (await client.post("/api/v1/models/import", headers=admin)).json()
        assert changed["updated"] == ["gpt-a"]
        gpt = (await client.get(f"/api/v1/models/{gpt['id']}", headers=admin)).json()
        assert Decimal(gpt["output_price_per_mtok"]) == Decimal("20")

        # An imported model is a model like any other: it can be checked.
        scripted_llm.reply("OK")
        check = await client.post(f"/api/v1/models/{gpt['id']}/check", headers=admin)
        assert check.json()["status"] == "up"


async def test_import_errors_say_what_to_do(
    start: Callable[..., Any], scripted_llm: ScriptedLLM
) -> None:
    _, client, admin = await start(llm=LlmSettings(health_interval=0))
    async with client:
        unconfigured = await client.post("/api/v1/models/import", headers=admin)
        assert unconfigured.status_code == 422
        assert "llm.base_url" in unconfigured.json()["detail"]

        scripted_llm.api_key = "sk-proxy"
        refused = await client.post(
            "/api/v1/models/import", json={"base_url": scripted_llm.base_url}, headers=admin
        )
        assert refused.status_code == 422
        assert "refused the credentials" in refused.json()["detail"]

        not_litellm = await client.post(
            "/api/v1/models/import",
            json={"base_url": scripted_llm.url + "/plain/v1"},
            headers=admin,
        )
        assert not_litellm.status_code == 422
        assert "LiteLLM proxy" in not_litellm.json()["detail"]

        dead = await client.post(
            "/api/v1/models/import",
            json={"base_url": f"http://127.0.0.1:{free_port()}/v1"},
            headers=admin,
        )
        assert dead.status_code == 503
        assert (await client.get("/api/v1/models", headers=admin)).json()["items"] == []
