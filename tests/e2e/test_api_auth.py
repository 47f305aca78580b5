"""Who may call the API: keys, roles, tenants, sessions, CSRF, rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from codeforge.container import Container
from codeforge.domain.keys import Role
from codeforge.http.app import create_app
from codeforge.runtime import Runtime
from codeforge.settings import RateLimitSettings
from tests.e2e.conftest import Headers, MakeKey, api_settings
from tests.support.app_client import AppClient

MODEL = {"name": "m1", "base_url": "http://127.0.0.1:9/v1"}


async def test_every_api_route_needs_a_key(client: AppClient) -> None:
    response = await client.get("/api/v1/projects")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Authorization: Bearer" in response.json()["detail"]

    wrong = await client.get("/api/v1/projects", headers={"Authorization": "Bearer cf_nope_x"})
    assert wrong.status_code == 401
    basic = await client.get("/api/v1/projects", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


async def test_the_first_admin_key_is_written_0600_and_works(
    runtime: Runtime, client: AppClient, admin: Headers
) -> None:
    assert runtime.admin_key_file is not None
    assert runtime.admin_key_file.stat().st_mode & 0o777 == 0o600
    assert (await client.get("/api/v1/keys", headers=admin)).status_code == 200


async def test_viewer_keys_read_but_cannot_mutate(client: AppClient, make_key: MakeKey) -> None:
    viewer = await make_key(Role.VIEWER)
    assert (await client.get("/api/v1/models", headers=viewer)).status_code == 200
    refused = await client.post("/api/v1/models", json=MODEL, headers=viewer)
    assert refused.status_code == 403
    assert "read-only" in refused.json()["detail"]


async def test_member_keys_cannot_manage_keys(client: AppClient, make_key: MakeKey) -> None:
    member = await make_key(Role.MEMBER)
    assert (await client.get("/api/v1/keys", headers=member)).status_code == 403
    create = await client.post("/api/v1/keys", json={"name": "x"}, headers=member)
    assert create.status_code == 403


async def test_a_tenant_never_sees_another_tenants_rows(
    client: AppClient, make_key: MakeKey
) -> None:
    acme = await make_key(Role.ADMIN, tenant="acme")
    globex = await make_key(Role.ADMIN, tenant="globex")
    created = await client.post("/api/v1/models", json=MODEL, headers=acme)
    assert created.status_code == 201
    model_id = created.json()["id"]

    assert (await client.get(f"/api/v1/models/{model_id}", headers=globex)).status_code == 404
    assert (await client.get("/api/v1/models", headers=globex)).json()["items"] == []
    patch = await client.patch(
        f"/api/v1/models/{model_id}", json={"version": 1, "context_window": 5}, headers=globex
    )
    assert patch.status_code == 404
    delete = await client.delete(f"/api/v1/models/{model_id}", headers=globex)
    assert delete.status_code == 404
    # The same name is free in the other tenant.
    assert (await client.post("/api/v1/models", json=MODEL, headers=globex)).status_code == 201
    assert (await client.get(f"/api/v1/models/{model_id}", headers=acme)).status_code == 200


async def test_keys_are_shown_once_stored_hashed_and_revocable(
    client: AppClient, admin: Headers
) -> None:
    created = await client.post(
        "/api/v1/keys", json={"name": "ci", "role": "member"}, headers=admin
    )
    assert created.status_code == 201
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("cf_")
    member = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/projects", headers=member)).status_code == 200

    listed = (await client.get("/api/v1/keys", headers=admin)).json()["items"]
    assert secret not in str(listed)
    assert all("key_hash" not in k and "secret" not in k for k in listed)

    key_id = body["key"]["id"]
    assert (await client.delete(f"/api/v1/keys/{key_id}", headers=admin)).status_code == 204
    revoked = await client.get("/api/v1/projects", headers=member)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]


async def test_a_browser_session_uses_a_cookie_and_a_csrf_token(
    client: AppClient, admin: Headers
) -> None:
    key = admin["Authorization"].removeprefix("Bearer ")
    signed_in = await client.post("/api/v1/sessions", json={"api_key": key})
    assert signed_in.status_code == 201
    set_cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie or "samesite=strict" in set_cookie.lower()
    csrf = signed_in.json()["csrf_token"]

    # The client keeps the cookie: reads need nothing else.
    assert (await client.get("/api/v1/models")).status_code == 200
    no_token = await client.post("/api/v1/models", json=MODEL)
    assert no_token.status_code == 403
    assert "X-CSRF-Token" in no_token.json()["detail"]
    wrong = await client.post("/api/v1/models", json=MODEL, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    with_token = await client.post("/api/v1/models", json=MODEL, headers={"X-CSRF-Token": csrf})
    assert with_token.status_code == 201

    signed_out = await client.delete("/api/v1/sessions", headers={"X-CSRF-Token": csrf})
    assert signed_out.status_code == 204
    client.cookies.clear()
    assert (await client.get("/api/v1/models")).status_code == 401


async def test_a_signed_out_or_forged_cookie_is_refused(client: AppClient, admin: Headers) -> None:
    key = admin["Authorization"].removeprefix("Bearer ")
    csrf = (await client.post("/api/v1/sessions", json={"api_key": key})).json()["csrf_token"]
    cookie = client.cookies.get("codeforge_session")
    assert cookie
    # Signing out is an unsafe request like any other: it needs the token.
    refused = await client.delete("/api/v1/sessions", headers={"X-CSRF-Token": "guess"})
    assert refused.status_code == 403
    signed_out = await client.delete("/api/v1/sessions", headers={"X-CSRF-Token": csrf})
    assert signed_out.status_code == 204
    client.cookies.clear()
    replayed = await client.get("/api/v1/models", headers={"Cookie": f"codeforge_session={cookie}"})
    assert replayed.status_code == 401

    forged = cookie.split(".")[0] + ".AAAA"
    client.cookies.clear()
    assert (
        await client.get("/api/v1/models", headers={"Cookie": f"codeforge_session={forged}"})
    ).status_code == 401


async def test_signing_in_with_a_bad_key_is_401(client: AppClient) -> None:
    response = await client.post("/api/v1/sessions", json={"api_key": "cf_00000000_nope"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


async def test_rate_limits_answer_429_with_retry_after(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    settings = api_settings(
        make_database(),
        tmp_path / "data",
        rate_limit=RateLimitSettings(per_ip_per_minute=60, per_key_per_minute=60, burst=3),
    )
    runtime = Runtime(Container(settings=settings))
    await runtime.start()
    try:
        assert runtime.admin_key_file is not None
        admin = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
        async with AppClient(app=create_app(runtime)) as client:
            answers = [await client.get("/api/v1/models", headers=admin) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["x-ratelimit-remaining"] for r in answers[:3]] == ["2", "1", "0"]
        refused = answers[3]
        assert int(refused.headers["retry-after"]) >= 1
        assert "x-ratelimit-reset" in refused.headers
        assert refused.json()["status"] == 429

        # SIGHUP's reload raises the limit without a restart.
        raised = RateLimitSettings(per_ip_per_minute=600, per_key_per_minute=600, burst=50)
        runtime.apply_reloaded(runtime.settings.__class__(rate_limit=raised))
        # An empty bucket refills at the new rate (10/s), not all at once.
        await asyncio.sleep(0.25)
        async with AppClient(app=create_app(runtime)) as client:
            again = await client.get("/api/v1/models", headers=admin)
        assert again.status_code == 200
    finally:
        await runtime.stop()


@pytest.mark.parametrize("method", ["post", "patch", "delete"])
async def test_unsafe_methods_on_unknown_routes_are_still_authenticated(
    client: AppClient, method: str
) -> None:
    response = await getattr(client, method)("/api/v1/projects/not-a-uuid")
    assert response.status_code in (401, 404, 405)
