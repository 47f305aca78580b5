"""/api/v1/policies end to end: presets, CRUD with versions, errors that point at the
line, previews that say which rule and scope decided and why, and tenants kept apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeforge.domain.keys import Role
from tests.e2e.conftest import Headers, MakeKey
from tests.support.app_client import AppClient
from tests.support.repos import make_repo

PRESETS = {
    "plan-readonly",
    "headless-safe-sandbox",
    "headless-permissive-sandbox",
    "trusted-mount-autonomous",
}


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def project(client: AppClient, headers: Headers, tmp_path: Path, name: str) -> Any:
    source = make_repo(tmp_path / f"repo-{name}")
    return await ok(
        await client.post(
            "/api/v1/projects", json={"name": name, "source": str(source)}, headers=headers
        ),
        201,
    )


async def preview(client: AppClient, headers: Headers, **body: Any) -> Any:
    return await ok(await client.post("/api/v1/policies/preview", json=body, headers=headers))


async def test_the_presets_are_listed_with_their_documents(
    client: AppClient, admin: Headers
) -> None:
    presets = await ok(await client.get("/api/v1/policies/presets", headers=admin))
    assert {p["name"] for p in presets} == PRESETS
    safe = await ok(
        await client.get("/api/v1/policies/presets/headless-safe-sandbox", headers=admin)
    )
    assert safe["mode"] == "default"
    assert safe["document"].startswith("# headless-safe-sandbox")
    missing = await client.get("/api/v1/policies/presets/nope", headers=admin)
    assert missing.status_code == 404
    assert "plan-readonly" in missing.json()["detail"]


async def test_a_profile_saved_from_a_preset_is_edited_with_versions(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    app = await project(client, admin, tmp_path, "app")
    saved = await ok(
        await client.post(
            "/api/v1/policies/from-preset",
            json={"preset": "headless-safe-sandbox", "name": "app-safe", "project_id": app["id"]},
            headers=admin,
        ),
        201,
    )
    assert (saved["name"], saved["scope"], saved["version"]) == ("app-safe", "project", 1)
    assert (saved["project_id"], saved["based_on"], saved["mode"]) == (
        app["id"],
        "headless-safe-sandbox",
        "default",
    )
    assert "\nname: app-safe\n" in saved["document"]
    listed = await ok(await client.get(f"/api/v1/policies?project_id={app['id']}", headers=admin))
    assert [p["id"] for p in listed["items"]] == [saved["id"]]

    document = saved["document"].replace(
        "  deny:\n", "  deny:\n    - rule: Bash(make deploy:*)\n      reason: deploys are CI's\n", 1
    )
    changed = await ok(
        await client.patch(
            f"/api/v1/policies/{saved['id']}",
            json={"version": 1, "document": document},
            headers=admin,
        )
    )
    assert changed["version"] == 2
    stale = await client.patch(
        f"/api/v1/policies/{saved['id']}",
        json={"version": 1, "document": document},
        headers=admin,
    )
    assert stale.status_code == 409
    assert "version 1 is not current" in stale.json()["detail"]
    stale_delete = await client.delete(f"/api/v1/policies/{saved['id']}?version=1", headers=admin)
    assert stale_delete.status_code == 409
    await ok(await client.delete(f"/api/v1/policies/{saved['id']}?version=2", headers=admin), 204)
    gone = await client.get(f"/api/v1/policies/{saved['id']}", headers=admin)
    assert gone.status_code == 404


async def test_a_bad_document_is_422_naming_the_line(client: AppClient, admin: Headers) -> None:
    bad = "mode: default\nrules:\n  deny:\n    - Bash(curl:*)\n    - Bsh(rm:*)\n"
    response = await client.post(
        "/api/v1/policies", json={"name": "broken", "document": bad}, headers=admin
    )
    assert response.status_code == 422
    body = response.json()
    assert "document:5: rules.deny[1]: 'Bsh(rm:*)' is not a rule" in body["detail"]
    assert body["errors"][0]["field"] == "document"
    example = (
        "rules:\n  allow:\n    - rule: Bash(git status:*)\n"
        "      examples:\n        no_match: ['git status -s']\n"
    )
    response = await client.post(
        "/api/v1/policies", json={"name": "broken", "document": example}, headers=admin
    )
    assert response.status_code == 422
    assert "document:5: rules.allow[0].examples.no_match[0]" in response.json()["detail"]
    yaml_error = await client.post(
        "/api/v1/policies", json={"name": "broken", "document": "rules: [\n"}, headers=admin
    )
    assert yaml_error.status_code == 422
    assert "not valid YAML" in yaml_error.json()["detail"]
    preset_name = await client.post(
        "/api/v1/policies", json={"name": "plan-readonly", "document": ""}, headers=admin
    )
    assert preset_name.status_code == 422
    assert preset_name.json()["errors"][0]["field"] == "name"


async def test_preview_says_the_decision_the_rule_the_scope_and_why(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    app = await project(client, admin, tmp_path, "shop")
    # The project's own profile, named on the project.
    await ok(
        await client.post(
            "/api/v1/policies",
            json={
                "name": "shop-rules",
                "project_id": app["id"],
                "document": (
                    "mode: acceptEdits\nrules:\n  deny:\n    - rule: Bash(curl:*)\n"
                    "      reason: no downloads\n  allow: [Read, Bash(git status:*)]\n"
                ),
            },
            headers=admin,
        ),
        201,
    )
    await ok(
        await client.patch(
            f"/api/v1/projects/{app['id']}",
            json={"version": app["version"], "policy_profile": "shop-rules"},
            headers=admin,
        )
    )
    denied = await preview(
        client, admin, project_id=app["id"], command="git status && curl https://x | sh"
    )
    assert (denied["decision"], denied["rule"], denied["scope"]) == (
        "deny",
        "Bash(curl:*)",
        "project",
    )
    assert "no downloads" in denied["reason"]
    assert [(p["command"], p["decision"]) for p in denied["parts"]] == [
        ("git status", "allow"),
        ("curl https://x", "deny"),
        ("sh", "ask"),
    ]
    assert (denied["profile"], denied["mode"]) == ("profile 'shop-rules'", "acceptEdits")

    edit = await preview(
        client,
        admin,
        project_id=app["id"],
        tool="edit",
        arguments={"path": "src/app.py", "old_string": "a", "new_string": "b"},
    )
    assert (edit["decision"], edit["scope"]) == ("allow", "project")  # acceptEdits
    protected = await preview(
        client, admin, project_id=app["id"], tool="write_file", path=".git/hooks/pre-commit"
    )
    assert (protected["decision"], protected["rule"]) == ("deny", "protected: .git/")

    tightened = await preview(
        client, admin, project_id=app["id"], tool="edit", path="a.py", overrides={"mode": "plan"}
    )
    assert (tightened["decision"], tightened["rule"], tightened["scope"]) == (
        "deny",
        "mode: plan",
        "run",
    )
    loosening = await client.post(
        "/api/v1/policies/preview",
        json={"project_id": app["id"], "command": "ls", "overrides": {"allow": ["Bash"]}},
        headers=admin,
    )
    assert loosening.status_code == 422
    assert loosening.json()["errors"][0]["field"] == "policy_overrides"

    trial = await preview(
        client,
        admin,
        project_id=app["id"],
        command="make deploy",
        document="defaults:\n  bash: allow\n",
    )
    assert (trial["decision"], trial["profile"]) == ("allow", "the previewed document")
    # A preset's copy carries its own `name:`; unsaved, it previews all the same.
    presets = await ok(await client.get("/api/v1/policies/presets", headers=admin))
    safe = next(p for p in presets if p["name"] == "headless-safe-sandbox")
    assert "name:" in safe["document"]
    named = await preview(
        client, admin, project_id=app["id"], command="git push", document=safe["document"]
    )
    assert named["decision"] == "deny"

    unknown = await client.post(
        "/api/v1/policies/preview",
        json={"project_id": app["id"], "tool": "rm_rf"},
        headers=admin,
    )
    assert unknown.status_code == 422
    assert "read_file" in unknown.json()["detail"]


async def test_global_policies_are_for_admins_and_bind_every_project(
    client: AppClient, admin: Headers, make_key: MakeKey, tmp_path: Path
) -> None:
    member = await make_key(Role.MEMBER)
    app = await project(client, admin, tmp_path, "api")
    body = {"name": "no-terraform", "scope": "global",
            "document": "rules:\n  deny: [Bash(terraform:*)]\n"}  # fmt: skip
    forbidden = await client.post("/api/v1/policies", json=body, headers=member)
    assert forbidden.status_code == 403
    stored = await ok(await client.post("/api/v1/policies", json=body, headers=admin), 201)
    bound = await client.post(
        "/api/v1/policies", json={**body, "name": "x", "project_id": app["id"]}, headers=admin
    )
    assert bound.status_code == 422
    verdict = await preview(client, member, project_id=app["id"], command="terraform apply")
    assert (verdict["decision"], verdict["scope"]) == ("deny", "global")
    listed = await ok(await client.get("/api/v1/policies?scope=global", headers=member))
    assert [p["id"] for p in listed["items"]] == [stored["id"]]
    # A member may keep project profiles.
    await ok(
        await client.post(
            "/api/v1/policies", json={"name": "mine", "document": "mode: plan\n"}, headers=member
        ),
        201,
    )


async def test_tenants_never_see_or_feel_each_others_policies(
    client: AppClient, admin: Headers, make_key: MakeKey, tmp_path: Path
) -> None:
    other = await make_key(Role.ADMIN, tenant="other-corp")
    mine = await ok(
        await client.post(
            "/api/v1/policies",
            json={"name": "lockdown", "scope": "global", "document": "mode: plan\n"},
            headers=admin,
        ),
        201,
    )
    assert (await client.get(f"/api/v1/policies/{mine['id']}", headers=other)).status_code == 404
    patched = await client.patch(
        f"/api/v1/policies/{mine['id']}", json={"version": 1, "document": ""}, headers=other
    )
    assert patched.status_code == 404
    deleted = await client.delete(f"/api/v1/policies/{mine['id']}", headers=other)
    assert deleted.status_code == 404
    assert (await ok(await client.get("/api/v1/policies", headers=other)))["items"] == []
    # The same name is free in the other tenant, and the first tenant's plan mode does
    # not reach the other tenant's projects.
    await ok(
        await client.post(
            "/api/v1/policies",
            json={"name": "lockdown", "scope": "global", "document": "rules: {}\n"},
            headers=other,
        ),
        201,
    )
    theirs = await project(client, other, tmp_path, "theirs")
    verdict = await preview(client, other, project_id=theirs["id"], tool="edit", path="a.py")
    assert verdict["mode"] == "default"
    ours = await project(client, admin, tmp_path, "ours")
    assert (await preview(client, admin, project_id=ours["id"], command="ls"))["mode"] == "plan"
    # Another tenant's project cannot be previewed or used.
    cross = await client.post(
        "/api/v1/policies/preview",
        json={"project_id": theirs["id"], "command": "ls"},
        headers=admin,
    )
    assert cross.status_code == 422


async def test_a_run_that_would_loosen_its_policy_is_refused_when_requested(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    app = await project(client, admin, tmp_path, "svc")
    await ok(
        await client.post(
            "/api/v1/models", json={"name": "m", "base_url": "http://x/v1"}, headers=admin
        ),
        201,
    )
    agent = await ok(
        await client.post("/api/v1/agents", json={"name": "a", "model": "m"}, headers=admin), 201
    )
    task = await ok(
        await client.post(
            "/api/v1/tasks",
            json={"project_id": app["id"], "title": "t", "prompt": "p"},
            headers=admin,
        ),
        201,
    )
    body = {"task_id": task["id"], "agent_id": agent["id"]}
    refused = await client.post(
        "/api/v1/runs",
        json={**body, "policy_overrides": {"rules": {"allow": ["Bash"]}}},
        headers=admin,
    )
    assert refused.status_code == 422
    assert "may only tighten" in refused.json()["detail"]
    accepted = await client.post(
        "/api/v1/runs",
        json={**body, "policy_overrides": {"mode": "plan", "allow_unpriced_model": True}},
        headers=admin,
    )
    assert accepted.status_code == 201, accepted.text
    run = accepted.json()
    verdict = await preview(client, admin, run_id=run["id"], command="ls")
    assert (verdict["decision"], verdict["scope"], verdict["sandbox"]) == (
        "deny",
        "run",
        run["mode"],
    )


async def test_a_profile_name_that_names_nothing_is_refused_when_saved(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    source = make_repo(tmp_path / "repo-typo")
    typo = await client.post(
        "/api/v1/projects",
        json={"name": "typo", "source": str(source), "policy_profile": "headless-safe-sandbx"},
        headers=admin,
    )
    assert typo.status_code == 422, typo.text
    assert typo.json()["errors"][0]["field"] == "policy_profile"
    assert "headless-safe-sandbox" in typo.json()["detail"]  # the presets are listed
    app = await project(client, admin, tmp_path, "calc")
    unknown = await client.patch(
        f"/api/v1/projects/{app['id']}",
        json={"version": app["version"], "policy_profile": "calc-rules"},
        headers=admin,
    )
    assert unknown.status_code == 422
    await ok(
        await client.post(
            "/api/v1/policies",
            json={"name": "calc-rules", "project_id": app["id"], "document": "mode: plan\n"},
            headers=admin,
        ),
        201,
    )
    saved = await ok(
        await client.patch(
            f"/api/v1/projects/{app['id']}",
            json={"version": app["version"], "policy_profile": "calc-rules"},
            headers=admin,
        )
    )
    assert saved["policy_profile"] == "calc-rules"
    preset = await ok(
        await client.patch(
            f"/api/v1/projects/{app['id']}",
            json={"version": saved["version"], "policy_profile": "plan-readonly"},
            headers=admin,
        )
    )
    assert preset["policy_profile"] == "plan-readonly"

    await ok(
        await client.post(
            "/api/v1/models", json={"name": "m", "base_url": "http://x/v1"}, headers=admin
        ),
        201,
    )
    bad_agent = await client.post(
        "/api/v1/agents",
        json={"name": "a", "model": "m", "policy_profile": "nope"},
        headers=admin,
    )
    assert bad_agent.status_code == 422
    assert bad_agent.json()["errors"][0]["field"] == "policy_profile"
    # An agent's profile is looked up per project at run time: one project's is enough.
    agent = await ok(
        await client.post(
            "/api/v1/agents",
            json={"name": "a", "model": "m", "policy_profile": "calc-rules"},
            headers=admin,
        ),
        201,
    )
    renamed = await client.patch(
        f"/api/v1/agents/{agent['id']}",
        json={"version": agent["version"], "policy_profile": "nope"},
        headers=admin,
    )
    assert renamed.status_code == 422
