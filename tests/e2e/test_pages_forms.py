"""The admin pages over HTTP, without a browser: sign-in, every form, every refusal.

A real runtime (PostgreSQL, git) behind the app; forms are posted the way a page
posts them (urlencoded, with the page's CSRF token) and the redirect is followed to
the page that shows the outcome. What needs a browser — live updates, the script,
layout — is in test_pages.py.
"""

from __future__ import annotations

import contextlib
import html
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dependency_injector import providers

from codeforge.container import Container
from codeforge.domain.keys import Role
from codeforge.http.app import create_app
from codeforge.runtime import Runtime
from codeforge.services.costs import Costs
from tests.e2e.conftest import api_settings
from tests.support.app_client import AppClient
from tests.support.page_client import PageClient, flash_of, text_of
from tests.support.repos import make_repo
from tests.support.scripted_llm import ScriptedLLM


@pytest.fixture
async def browser(client: AppClient) -> PageClient:
    return PageClient(client)


@pytest.fixture
def admin_key(runtime: Runtime) -> str:
    assert runtime.admin_key_file is not None
    return runtime.admin_key_file.read_text().strip()


async def key_of(runtime: Runtime, role: Role) -> str:
    issued = await runtime.services.api_keys.create_for_tenant_name(
        name=f"{role.value} key", role=role, tenant="default"
    )
    return issued.secret


@contextlib.asynccontextmanager
async def signed_in(runtime: Runtime, role: Role) -> AsyncIterator[PageClient]:
    async with AppClient(app=create_app(runtime)) as client:
        pages = PageClient(client)
        await pages.sign_in(await key_of(runtime, role))
        yield pages


async def register(pages: PageClient, tmp_path: Path, name: str = "calc") -> str:
    source = make_repo(tmp_path / f"repo-{name}", {"calc.py": "def add(a, b):\n    return a - b\n"})
    done = await pages.submit("/projects", "/projects", {"name": name, "source": str(source)})
    assert done.status_code == 200, done.text
    found = re.search(r"/projects/([0-9a-f-]{36})$", str(done.url))
    assert found is not None, done.url
    return found.group(1)


# --- signing in and out ---------------------------------------------------------------


async def test_a_page_sends_a_browser_without_a_session_to_sign_in_and_back_after(
    browser: PageClient, admin_key: str
) -> None:
    refused = await browser.client.get("/projects", follow_redirects=False)
    assert refused.status_code == 303
    assert refused.headers["location"] == "/sign-in?next=%2Fprojects"

    landed = await browser.sign_in(admin_key, next="/projects")
    assert landed.url.path == "/projects"
    assert flash_of(landed.text) == ("info", "Signed in (admin).")
    cookies = landed.history[0].headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("codeforge_session="))
    assert "HttpOnly" in session
    assert "SameSite=strict" in session
    # A session lasts the configured 12 hours, not decades.
    assert "Max-Age=4319" in session or "Max-Age=43200" in session

    # The same cookie opens the API (the pages' live streams use it).
    assert (await browser.client.get("/api/v1/projects")).status_code == 200


async def test_a_wrong_key_is_a_message_on_the_sign_in_page(browser: PageClient) -> None:
    page = await browser.sign_in("cf_12345678_not-a-key", next="/models")
    assert page.url.path == "/sign-in"
    assert page.url.params["next"] == "/models"
    assert flash_of(page.text) == ("error", "the API key is not valid")
    # The key typed is never written back into the page.
    assert "cf_12345678_not-a-key" not in page.text
    assert (await browser.client.get("/models", follow_redirects=False)).status_code == 303


async def test_sign_in_refuses_a_form_another_site_could_have_posted(
    browser: PageClient, admin_key: str
) -> None:
    # No sign-in token (a cross-site form cannot read ours): nobody is signed in.
    forged = await browser.client.post(
        "/sign-in", data={"api_key": admin_key, "next": "/"}, follow_redirects=True
    )
    assert forged.url.path == "/sign-in"
    message = flash_of(forged.text)
    assert message is not None
    assert "out of date" in message[1]
    assert "codeforge_session" not in browser.client.cookies


async def test_next_never_leads_off_the_site(browser: PageClient, admin_key: str) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"):
        landed = await browser.sign_in(admin_key, next=target)
        assert landed.url.host == "testserver.local"
        assert landed.url.path == "/", target


async def test_signing_out_ends_the_session_for_pages_and_api(
    browser: PageClient, admin_key: str
) -> None:
    await browser.sign_in(admin_key)
    out = await browser.submit("/", "/sign-out", {})
    assert out.url.path == "/sign-in"
    assert flash_of(out.text) == ("info", "Signed out.")
    assert (await browser.client.get("/", follow_redirects=False)).status_code == 303
    assert (await browser.client.get("/api/v1/projects")).status_code == 401


async def test_a_revoked_key_ends_its_sessions_with_a_message(
    runtime: Runtime, browser: PageClient, admin_key: str
) -> None:
    member = await key_of(runtime, Role.MEMBER)
    async with AppClient(app=create_app(runtime)) as other:
        pages = PageClient(other)
        await pages.sign_in(member)
        await browser.sign_in(admin_key)
        keys = await browser.page("/keys")
        key_id = re.search(r'id="key-([0-9a-f-]{36})">\s*<th scope="row">member key', keys)
        assert key_id is not None
        await browser.submit("/keys", f"/keys/{key_id.group(1)}/revoke", {})

        gone = await other.get("/tasks", follow_redirects=True)
        assert gone.url.path == "/sign-in"
        assert flash_of(gone.text) == ("error", "the session's API key has been revoked")


# --- forms and their errors --------------------------------------------------------------


async def test_a_form_without_its_csrf_token_changes_nothing(
    browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    source = make_repo(tmp_path / "repo")
    for token in ("", "forged-token"):
        refused = await browser.submit(
            "/projects", "/projects", {"name": "sneaky", "source": str(source)}, token=token
        )
        assert refused.url.path == "/projects"
        message = flash_of(refused.text)
        assert message is not None
        assert message[0] == "error"
        assert "out of date" in message[1]
    assert "sneaky" not in text_of(await browser.page("/projects"))


async def test_a_bad_value_comes_back_as_a_message_on_the_form_with_what_was_typed(
    browser: PageClient, admin_key: str
) -> None:
    await browser.sign_in(admin_key)
    page = await browser.submit(
        "/projects",
        "/projects",
        {"form_id": "new-project", "name": "my-app", "source": "relative/path"},
    )
    assert page.status_code == 200
    assert page.url.path == "/projects"
    assert flash_of(page.text) == (
        "error",
        "source must be a clone URL (https://, ssh://, git@host:repo) or an absolute path",
    )
    # The field is marked and what was typed is back in the form.
    source = re.search(r'<input id="new-project-source"[^>]*>', page.text)
    assert source is not None
    assert 'aria-invalid="true"' in source.group(0)
    assert 'value="relative/path"' in source.group(0)
    name = re.search(r'<input id="new-project-name"[^>]*>', page.text)
    assert name is not None
    assert 'value="my-app"' in name.group(0)
    # Shown once: the next page has no message.
    assert flash_of(await browser.page("/projects")) is None


async def test_the_project_page_shows_git_and_saves_gates_limits_and_budget(
    browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    page = await browser.page(f"/projects/{project_id}")
    words = text_of(page)
    assert "Branch main" in words
    assert "Tree clean" in words
    assert "main (current)" in words

    fields = {
        "form_id": "settings",
        "version": "1",
        "tests": "python3 -m unittest",
        "require_tests_pass": "on",
        "lint": "",
        "max_diff_lines": "300",
        "max_attempts": "2",
        "timeout_seconds": "120",
        "rollback_on_gate_fail": "on",
        "quality_gates": "true\n\n  echo ok  \n",
        "max_steps": "12",
        "max_cost_usd": "0.75",
        "budget_usd": "5",
        "description": "the calculator",
    }
    saved = await browser.submit(
        f"/projects/{project_id}", f"/projects/{project_id}/settings", fields
    )
    assert flash_of(saved.text) == ("info", "Settings saved.")
    project = (await browser.client.get(f"/api/v1/projects/{project_id}")).json()
    assert project["gates"] == {
        "tests": "python3 -m unittest",
        "lint": "",
        "require_tests_pass": True,
        "require_lint_pass": False,
        "max_diff_lines": 300,
        "rollback_on_gate_fail": True,
        "stall_detection": False,
        "max_attempts": 2,
        "timeout_seconds": 120,
    }
    assert project["quality_gates"] == ["true", "echo ok"]
    assert project["limits"] == {"max_steps": 12, "max_wall_seconds": None, "max_cost_usd": "0.75"}
    assert project["budget_usd"] == "5"
    assert project["version"] == 2

    # The same form again carries version 1: someone changed it since, and it says so.
    stale = await browser.submit(
        f"/projects/{project_id}",
        f"/projects/{project_id}/settings",
        {**fields, "max_attempts": "9"},
    )
    level, message = flash_of(stale.text) or ("", "")
    assert level == "error"
    assert "reload" in message
    bad = await browser.submit(
        f"/projects/{project_id}",
        f"/projects/{project_id}/settings",
        {**fields, "version": "2", "max_diff_lines": "lots"},
    )
    assert flash_of(bad.text) == ("error", "max diff lines must be a whole number (got 'lots')")
    assert (await browser.client.get(f"/api/v1/projects/{project_id}")).json()["version"] == 2


async def test_pull_and_checkout_report_what_git_did_and_refuse_a_bad_ref(
    browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    here = f"/projects/{project_id}"
    pulled = await browser.submit(here, f"{here}/pull", {})
    assert flash_of(pulled.text) == ("info", "Already up to date with origin/main.")
    made = await browser.submit(here, f"{here}/checkout", {"ref": "feature", "create": "on"})
    assert flash_of(made.text) == ("info", "Checked out feature.")
    assert "feature (current)" in text_of(made.text)
    missing = await browser.submit(here, f"{here}/checkout", {"ref": "no-such-branch"})
    level, message = flash_of(missing.text) or ("", "")
    assert level == "error"
    assert "no-such-branch" in message


async def test_tasks_are_created_and_runs_started_from_the_tasks_page(
    browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    added = await browser.submit(
        "/models",
        "/models",
        {"name": "local", "base_url": "http://127.0.0.1:9/v1", "input_price_per_mtok": "1"},
    )
    assert flash_of(added.text) == ("info", "Model local added.")
    agent = await browser.submit("/models", "/agents", {"name": "coder", "model": "local"})
    assert flash_of(agent.text) == ("info", "Agent coder added.")

    created = await browser.submit(
        "/tasks",
        "/tasks",
        {
            "project_id": project_id,
            "title": "Fix add",
            "prompt": "add() subtracts",
            "acceptance_criteria": "tests pass\n\nno new files",
        },
    )
    assert flash_of(created.text) == ("info", "Task “Fix add” created.")
    assert created.url.params["project_id"] == project_id
    task = (await browser.client.get("/api/v1/tasks")).json()["items"][0]
    assert task["acceptance_criteria"] == ["tests pass", "no new files"]

    agents = (await browser.client.get("/api/v1/agents")).json()["items"]
    start = {
        "agent_id": agents[0]["id"],
        "mode": "",
        "deliver": "patch",
        "max_steps": "5",
        "max_cost_usd": "",
    }
    bad = await browser.submit("/tasks", f"/tasks/{task['id']}/runs", {**start, "max_steps": "0"})
    assert flash_of(bad.text) == ("error", "max steps must be 1 or more")
    started = await browser.submit("/tasks", f"/tasks/{task['id']}/runs", start)
    assert flash_of(started.text) == ("info", "Run started.")
    run_id = started.url.path.rsplit("/", 1)[1]
    run = (await browser.client.get(f"/api/v1/runs/{run_id}")).json()
    assert run["limits"]["max_steps"] == 5
    assert (run["status"], run["deliver"]) == ("requested", "patch")
    # The monitor shows it; no worker runs here, so it waits, and can be paused.
    words = text_of(started.text)
    assert "requested" in words
    assert "RunRequested" in words
    paused = await browser.submit(f"/runs/{run_id}", f"/runs/{run_id}/pause", {})
    assert "suspended" in text_of(paused.text)
    resumed = await browser.submit(f"/runs/{run_id}", f"/runs/{run_id}/resume", {})
    assert flash_of(resumed.text) == ("info", "Resumed: the run is queued for a worker.")
    cancelled = await browser.submit(f"/runs/{run_id}", f"/runs/{run_id}/cancel", {})
    assert "cancelled" in text_of(cancelled.text)
    again = await browser.submit(f"/runs/{run_id}", f"/runs/{run_id}/cancel", {})
    assert flash_of(again.text) == ("error", "the run already ended (cancelled)")
    # The task's runs are listed under it.
    assert f"run {run_id.replace('-', '')[-8:]}" in text_of(await browser.page("/tasks"))


async def test_the_models_page_refuses_bad_values_shows_prices_and_deletes(
    browser: PageClient, admin_key: str
) -> None:
    await browser.sign_in(admin_key)
    bad = await browser.submit(
        "/models", "/models", {"form_id": "new-model", "name": "m", "base_url": "ftp://x"}
    )
    assert flash_of(bad.text) == ("error", "base_url must be an http(s) URL")
    price = await browser.submit(
        "/models",
        "/models",
        {"name": "m", "base_url": "http://x/v1", "input_price_per_mtok": "-1"},
    )
    assert flash_of(price.text) == (
        "error",
        "input price must be an amount of 0 or more, like 0.50 (got '-1')",
    )
    agent = await browser.submit("/models", "/agents", {"name": "a", "model": "nope"})
    level, message = flash_of(agent.text) or ("", "")
    assert level == "error"
    assert "no model named 'nope'" in message
    await browser.submit(
        "/models",
        "/models",
        {"name": "priced", "base_url": "http://x/v1", "input_price_per_mtok": "2.5",
         "output_price_per_mtok": "10"},
    )  # fmt: skip
    words = text_of(await browser.page("/models"))
    # 10,000 tokens in at $2.50/M and 1,000 out at $10/M.
    assert "priced $2.50 $10.00 $0.0350" in words
    model_id = (await browser.client.get("/api/v1/models")).json()["items"][0]["id"]
    deleted = await browser.submit("/models", f"/models/{model_id}/delete", {})
    assert flash_of(deleted.text) == ("info", "Model priced deleted.")


async def test_a_viewer_sees_no_mutating_controls_and_cannot_post(
    runtime: Runtime, browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    await browser.submit("/models", "/models", {"name": "m", "base_url": "http://127.0.0.1:9/v1"})
    profile = await browser.submit(
        "/policies/presets/plan-readonly",
        "/policies/from-preset",
        {"preset": "plan-readonly", "name": "mine"},
    )
    preview = f"/policies/preview?project_id={project_id}&tool=bash&command=ls"
    async with signed_in(runtime, Role.VIEWER) as viewer:
        for path in ("/", "/projects", f"/projects/{project_id}", "/tasks", "/runs", "/models",
                     "/policies", profile.url.path, "/policies/presets/plan-readonly",
                     preview):  # fmt: skip
            page = await viewer.page(path)
            posts = re.findall(r'<form method="post" action="([^"]+)"', page)
            assert posts == ["/sign-out"], (path, posts)
        assert "Keys" not in text_of(await viewer.page("/"))
        refused = await viewer.submit(
            "/projects", f"/projects/{project_id}/pull", {}, token=await token_of(viewer)
        )
        assert flash_of(refused.text) == ("error", "this API key is read-only (role viewer)")
        # A viewer may ask what the policy decides (a preview changes nothing)...
        assert "Decision: ALLOW" in text_of(await viewer.page(preview))
        # ...and may not change a policy, whatever it posts.
        edit = await viewer.submit(
            profile.url.path,
            profile.url.path,
            {"form_id": "edit-policy", "version": "1", "name": "mine", "document": ""},
            token=await token_of(viewer),
        )
        assert edit.status_code == 403
        assert flash_of(edit.text) == ("error", "this API key is read-only (role viewer)")
        keys = await viewer.page("/keys", status=403)
        assert "this action needs an admin API key" in keys


async def token_of(pages: PageClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', await pages.page("/"))
    assert found is not None
    return found.group(1)


async def test_a_created_key_is_shown_once_and_works(
    runtime: Runtime, browser: PageClient, admin_key: str
) -> None:
    await browser.sign_in(admin_key)
    made = await browser.submit("/keys", "/keys", {"name": "ci", "role": "viewer"})
    assert made.status_code == 201
    secret = re.search(r'id="new-secret">(cf_[^<]+)<', made.text)
    assert secret is not None
    assert made.headers["cache-control"] == "no-store"
    assert secret.group(1) not in await browser.page("/keys")
    headers = {"Authorization": f"Bearer {secret.group(1)}"}
    async with AppClient(app=create_app(runtime)) as other:
        assert (await other.get("/api/v1/projects", headers=headers)).status_code == 200
    bad = await browser.submit("/keys", "/keys", {"name": "x", "role": "root"})
    assert flash_of(bad.text) == ("error", "role must be one of: admin, member, viewer")


# --- errors that are not a form's ---------------------------------------------------------


async def test_missing_pages_answer_a_browser_with_a_page_and_the_api_with_problem_json(
    browser: PageClient, admin_key: str
) -> None:
    await browser.sign_in(admin_key)
    page = await browser.client.get("/no/such/page", headers={"accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "there is no page here" in page.text
    run = await browser.client.get(f"/runs/{uuid.uuid4()}", headers={"accept": "text/html"})
    assert run.status_code == 404
    assert "Not Found" in run.text
    assert "Traceback" not in run.text
    bad = await browser.client.get("/runs?status=exploded", headers={"accept": "text/html"})
    assert bad.status_code == 400
    assert "the request was not understood" in bad.text
    api = await browser.client.get("/api/v1/nope", headers={"accept": "text/html"})
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


async def test_pages_forbid_framing_inline_scripts_and_caching(
    browser: PageClient, admin_key: str
) -> None:
    await browser.sign_in(admin_key)
    response = await browser.client.get("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text
    assert " style=" not in response.text
    for asset in ("/static/codeforge.css", "/static/codeforge.js"):
        assert (await browser.client.get(asset)).status_code == 200


async def test_a_forged_flash_message_is_not_shown(browser: PageClient, admin_key: str) -> None:
    await browser.sign_in(admin_key)
    browser.client.cookies.set("codeforge_flash", "eyJtZXNzYWdlIjoiUGF5IG1lIn0.forged")
    assert flash_of(await browser.page("/")) is None


class ExplodingLedger:
    """A cost ledger with a bug: its totals raise something no layer expects."""

    async def totals(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("the ledger exploded")


async def broken_costs() -> Costs:
    # The real provider is awaited (it needs the pool): so is this one.
    return Costs(ExplodingLedger())  # type: ignore[arg-type]


async def test_an_unexpected_error_is_a_page_with_a_request_id_never_a_traceback(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    container = Container(settings=api_settings(make_database(), tmp_path / "data"))
    container.costs.override(providers.Coroutine(broken_costs))
    runtime = Runtime(container)
    await runtime.start(with_worker=False)
    try:
        async with AppClient(app=create_app(runtime)) as client:
            pages = PageClient(client)
            assert runtime.admin_key_file is not None
            await pages.sign_in(runtime.admin_key_file.read_text().strip(), next="/projects")
            broken = await client.get("/", headers={"x-request-id": "req-42"})
            assert broken.status_code == 500
            assert "something went wrong on our side" in broken.text
            assert "req-42" in broken.text
            assert "exploded" not in broken.text
            assert "Traceback" not in broken.text
    finally:
        await runtime.stop("test finished")


async def test_the_inspector_forks_and_refuses_what_a_run_cannot_do_yet(
    browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    await browser.submit("/models", "/models", {"name": "m", "base_url": "http://127.0.0.1:9/v1"})
    await browser.submit("/models", "/agents", {"name": "a", "model": "m"})
    await browser.submit(
        "/tasks", "/tasks", {"project_id": project_id, "title": "T", "prompt": "p"}
    )
    task = (await browser.client.get("/api/v1/tasks")).json()["items"][0]
    agent = (await browser.client.get("/api/v1/agents")).json()["items"][0]
    started = await browser.submit(
        "/tasks", f"/tasks/{task['id']}/runs", {"agent_id": agent["id"], "deliver": "patch"}
    )
    run_id = started.url.path.rsplit("/", 1)[1]
    inspect = f"/runs/{run_id}/inspect"

    page = await browser.page(inspect)
    assert "Event #1: RunRequested" in text_of(page)
    assert "Only a paused (suspended) run can be rewound" in text_of(page)
    # Nothing ran yet: a replay has nothing to play back.
    assert "The run has not started: there is nothing to replay." in text_of(page)
    refused = await browser.submit(inspect, f"/runs/{run_id}/replay", {})
    assert flash_of(refused.text) == (
        "error",
        "the run has not started: there is nothing to replay",
    )
    rewind = await browser.submit(inspect, f"/runs/{run_id}/rewind", {"to_seq": "1"})
    level, message = flash_of(rewind.text) or ("", "")
    assert level == "error"
    assert message.startswith("only a suspended run can be rewound")

    # Paused, the preview says why it cannot go back before the run's first prompt.
    await browser.submit(f"/runs/{run_id}", f"/runs/{run_id}/pause", {})
    preview = text_of(await browser.page(f"{inspect}?seq=1&rewind=true"))
    assert "Cannot rewind here: to_seq must be between the first prompt" in preview

    forked = await browser.submit(
        inspect,
        f"/runs/{run_id}/fork",
        {"at_seq": "1", "mode": "", "deliver": "", "max_steps": "3"},
    )
    assert flash_of(forked.text) == ("info", "Forked from event 1 of the run.")
    fork = (await browser.client.get(f"/api/v1/runs/{forked.url.path.rsplit('/', 1)[1]}")).json()
    assert fork["limits"]["max_steps"] == 3
    assert f"Forked from run {run_id.replace('-', '')[-8:]} at event 1." in text_of(forked.text)
    past_end = await browser.submit(inspect, f"/runs/{run_id}/fork", {"at_seq": "99"})
    assert flash_of(past_end.text) == (
        "error",
        "at_seq must be between 1 and 2 (the run's log)",
    )
    missing = await browser.client.get(f"{inspect}?seq=abc", headers={"accept": "text/html"})
    assert missing.status_code == 400
    assert "seq" in missing.text


async def test_a_session_opened_through_the_api_in_the_same_browser_asks_to_sign_in_again(
    browser: PageClient, admin_key: str
) -> None:
    await browser.sign_in(admin_key)
    # The API's sign-in replaces the session cookie; the page's CSRF cookie is the old
    # session's, so its forms could never be sent: the pages ask for a sign-in instead.
    opened = await browser.client.post("/api/v1/sessions", json={"api_key": admin_key})
    assert opened.status_code == 201
    again = await browser.client.get("/projects", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/sign-in?next=%2Fprojects"
    await browser.sign_in(admin_key, next="/projects")
    assert (await browser.client.get("/projects")).status_code == 200


# --- policies -------------------------------------------------------------------------------


def policy_id_of(page: str) -> str:
    found = re.search(r'action="/policies/([0-9a-f-]{36})"', page)
    assert found is not None, "no policy editor on the page"
    return found.group(1)


def editor_text(page: str) -> str:
    """What the policy editor holds, as a browser would read it (the first line break
    after the tag is not part of it)."""
    found = re.search(r'<textarea id="edit-policy-document"[^>]*>\n(.*?)</textarea>', page, re.S)
    assert found is not None, "no policy editor on the page"
    return html.unescape(found.group(1))


async def test_a_preset_saved_as_a_profile_is_edited_with_problems_shown_at_their_lines(
    browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    listing = text_of(await browser.page("/policies"))
    assert "headless-safe-sandbox default Default for server runs" in listing
    assert "No profile of your own yet" in listing

    saved = await browser.submit(
        "/policies/presets/headless-safe-sandbox",
        "/policies/from-preset",
        {"preset": "headless-safe-sandbox", "name": "shop-rules", "project_id": project_id},
    )
    assert flash_of(saved.text) == (
        "info",
        "Preset headless-safe-sandbox saved as profile shop-rules: edit it below. "
        "Choose it on a project's page (or an agent's) to use it.",
    )
    here = saved.url.path
    policy_id = policy_id_of(saved.text)
    words = text_of(saved.text)
    assert "Applies to project calc" in words
    assert "Based on preset headless-safe-sandbox" in words
    document = editor_text(saved.text)
    assert document.startswith("# headless-safe-sandbox")
    assert "\nname: shop-rules\n" in document

    # A rule misspelt on one line: the save is refused, the problem shown at that line,
    # and the whole text (kilobytes: more than a redirect's cookie carries) kept.
    lines = document.split("\n")
    bad_line = lines.index("    - Bash(su:*)") + 1
    lines[bad_line - 1] = "    - Bsh(su:*)"
    typed = "\n".join(lines)
    assert len(typed.encode()) > 4000
    refused = await browser.submit(
        here,
        here,
        {"form_id": "edit-policy", "version": "1", "name": "shop-rules",
         "document": typed.replace("\n", "\r\n")},
    )  # fmt: skip
    assert refused.status_code == 422
    level, message = flash_of(refused.text) or ("", "")
    assert level == "error"
    assert message.startswith(f"document:{bad_line}: rules.deny[")
    assert "'Bsh(su:*)' is not a rule" in message
    assert editor_text(refused.text) == typed
    editor = re.search(r'<textarea id="edit-policy-document"[^>]*>', refused.text)
    assert editor is not None
    assert 'aria-invalid="true"' in editor.group(0)
    assert f'data-goto-line="{bad_line}"' in refused.text
    marked = re.search(
        rf'<div class="doc-line doc-line-error" id="line-{bad_line}">.*?</div>\s*'
        r'<p class="doc-problem"><strong>Line (\d+):</strong> ([^<]*)</p>',
        refused.text,
        re.S,
    )
    assert marked is not None
    assert marked.group(1) == str(bad_line)
    assert "is not a rule" in html.unescape(marked.group(2))
    assert "Not saved: the document has 1 problem." in text_of(refused.text)
    stored = (await browser.client.get(f"/api/v1/policies/{policy_id}")).json()
    assert stored["version"] == 1

    # Fixed, it is saved as written.
    fixed = typed.replace("Bsh(su:*)", "Bash(su:*)") + "  # reviewed\n"
    done = await browser.submit(
        here,
        here,
        {"form_id": "edit-policy", "version": "1", "name": "shop-rules", "document": fixed},
    )
    assert flash_of(done.text) == ("info", "Profile shop-rules saved (version 2).")
    assert editor_text(done.text) == fixed
    stored = (await browser.client.get(f"/api/v1/policies/{policy_id}")).json()
    assert (stored["version"], stored["document"]) == (2, fixed)

    # Someone saved meanwhile: the text typed is kept and theirs is shown beside it.
    stale = await browser.submit(
        here,
        here,
        {"form_id": "edit-policy", "version": "1", "name": "shop-rules",
         "document": fixed + "# mine\n"},
    )  # fmt: skip
    assert stale.status_code == 409
    level, message = flash_of(stale.text) or ("", "")
    assert (level, "was changed by someone else" in message) == ("error", True)
    assert editor_text(stale.text) == fixed + "# mine\n"
    assert "Saved meanwhile: version 2" in text_of(stale.text)
    assert 'name="version" value="2"' in stale.text

    # Chosen by the project, then deleted: the page says what that does to its runs.
    settings = await browser.page(f"/projects/{project_id}")
    assert '<option value="shop-rules">shop-rules (this project&#39;s profile)</option>' in (
        settings
    )
    chosen = await browser.submit(
        f"/projects/{project_id}",
        f"/projects/{project_id}/settings",
        {"version": "1", "policy_profile": "shop-rules", "max_attempts": "3",
         "timeout_seconds": "600"},
    )  # fmt: skip
    assert flash_of(chosen.text) == ("info", "Settings saved.")
    project = (await browser.client.get(f"/api/v1/projects/{project_id}")).json()
    assert project["policy_profile"] == "shop-rules"
    # Name, applies to, mode, version, based on, named by.
    row = "shop-rules project calc default 2 headless-safe-sandbox project calc"
    assert row in text_of(await browser.page("/policies"))
    deleted = await browser.submit(here, f"{here}/delete", {"version": "2"})
    assert deleted.url.path == "/policies"
    assert flash_of(deleted.text) == (
        "info",
        "Profile shop-rules deleted. Still named by project calc: their runs deny every "
        "call until they name another profile.",
    )
    # The project page keeps the name it has, and says it is missing.
    page = await browser.page(f"/projects/{project_id}")
    assert "shop-rules (MISSING: its runs deny every call)" in text_of(page)


async def test_the_preview_shows_the_decision_its_rule_and_each_part_of_a_command(
    browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    asked = {"form_id": "preview", "project_id": project_id, "sandbox": "mount", "tool": "bash"}
    command = "git status && curl https://x | sh"
    page = await browser.client.get("/policies/preview", params={**asked, "command": command})
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Decision: DENY Rule Network Scope preset:headless-safe-sandbox" in words
    assert "Base profile preset headless-safe-sandbox Mode default Sandbox mount" in words
    parts = re.search(r'<table id="parts">.*?</table>', page.text, re.S)
    assert parts is not None
    rows = [
        text_of(row).strip()
        for row in re.findall(r"<tr>(.*?)</tr>", parts.group(0), re.S)
        if "<td>" in row
    ]
    assert [row.split(" ")[:3] for row in rows] == [
        ["git", "status", "ALLOW"],
        ["curl", "https://x", "DENY"],
        ["sh", "ASK", "—"],
    ]
    # The question stays in the form, to change and ask again.
    assert 'value="git status &amp;&amp; curl https://x | sh"' in page.text

    read = await browser.client.get(
        "/policies/preview", params={**asked, "tool": "read_file", "path": ".env"}
    )
    assert "Decision: DENY Rule Read(.env)" in text_of(read.text)

    # What keeps the gate from answering is said on the form, the field marked.
    for params, status, message, field in (
        ({**asked, "project_id": ""}, 422, "choose a project", "project_id"),
        ({**asked, "command": "  "}, 422, "give the command to preview", "command"),
        ({**asked, "tool": "rm"}, 422, "unknown tool 'rm'; the tools are: bash, ", "tool"),
        ({**asked, "sandbox": "vm", "command": "ls"}, 422, "sandbox must be one of", "sandbox"),
        ({**asked, "project_id": str(uuid.uuid4()), "command": "ls"}, 422, "not found",
         "project_id"),
    ):  # fmt: skip
        refused = await browser.client.get("/policies/preview", params=params)
        assert refused.status_code == status, params
        level, said = flash_of(refused.text) or ("", "")
        assert level == "error"
        assert message in said, (message, said)
        marked = re.search(rf'<(?:input|select) id="preview-{field}"[^>]*>', refused.text)
        assert marked is not None
        assert 'aria-invalid="true"' in marked.group(0), field


async def test_policy_forms_refuse_bad_names_and_places_and_global_policies_need_an_admin(
    runtime: Runtime, browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    new = {"form_id": "new-policy", "scope": "project", "document": "mode: plan\n"}
    for fields, message in (
        ({"name": "default"}, "'default' names a built-in profile; choose another name"),
        ({"name": "plan-readonly"}, "'plan-readonly' names a built-in profile"),
        ({"name": "Bad Name"}, "a policy name is 1-63 characters"),
        ({"name": "g", "scope": "global", "project_id": project_id},
         "a global policy applies to every project; leave project_id empty"),
        ({"name": "x", "scope": "everywhere"}, "scope must be one of: global, project"),
        ({"name": "x", "document": "name: y\nmode: plan\n"},
         "document:1: name: the document is named 'y', but it is stored as 'x'"),
        ({"name": "x", "document": "mode: [\n"}, "document:2: not valid YAML"),
    ):  # fmt: skip
        refused = await browser.submit("/policies", "/policies", {**new, **fields})
        assert refused.status_code in (403, 409, 422), (fields, refused.status_code)
        level, said = flash_of(refused.text) or ("", "")
        assert (level, said.startswith(message)) == ("error", True), (message, said)
        # The new policy's form comes back as typed.
        assert html.escape(fields.get("document", new["document"])) in refused.text
    made = await browser.submit(
        "/policies", "/policies", {**new, "name": "everyone", "scope": "global"}
    )
    assert flash_of(made.text) == (
        "info",
        "Global policy everyone created. It applies to every run from now on.",
    )
    global_page = made.url.path
    duplicate = await browser.submit("/policies", "/policies", {**new, "name": "everyone"})
    level, said = flash_of(duplicate.text) or ("", "")
    assert (duplicate.status_code, level) == (409, "error")
    missing = await browser.submit(
        "/policies/presets/plan-readonly",
        "/policies/from-preset",
        {"preset": "no-such-preset", "name": "mine"},
    )
    level, said = flash_of(missing.text) or ("", "")
    assert missing.url.path == "/policies/presets/plan-readonly"
    assert said.startswith("no preset named 'no-such-preset'; the presets are: ")

    # A member writes profiles, not global policies: no form offers one, and a post
    # that tries anyway is refused with a message.
    async with signed_in(runtime, Role.MEMBER) as member:
        listing = await member.page("/policies")
        assert 'value="global"' not in listing
        assert "Only an admin changes a global policy." in text_of(await member.page(global_page))
        assert f'action="{global_page}"' not in await member.page(global_page)
        refused = await member.submit(
            "/policies", "/policies", {**new, "name": "mine", "scope": "global"}
        )
        assert refused.status_code == 403
        assert flash_of(refused.text) == ("error", "this action needs an admin API key")
        edit = await member.submit(
            global_page,
            global_page,
            {"form_id": "edit-policy", "version": "1", "name": "everyone", "document": ""},
        )
        assert flash_of(edit.text) == ("error", "this action needs an admin API key")
        gone = await member.submit(global_page, f"{global_page}/delete", {"version": "1"})
        assert flash_of(gone.text) == ("error", "this action needs an admin API key")
        from_preset = await member.submit(
            "/policies/presets/plan-readonly",
            "/policies/from-preset",
            {"preset": "plan-readonly", "name": "mine", "scope": "global"},
        )
        assert flash_of(from_preset.text) == ("error", "this action needs an admin API key")
        own = await member.submit(
            "/policies/presets/plan-readonly",
            "/policies/from-preset",
            {"preset": "plan-readonly", "name": "mine", "project_id": ""},
        )
        level, said = flash_of(own.text) or ("", "")
        assert said.startswith("Preset plan-readonly saved as profile mine")
        assert "Applies to every project" in text_of(own.text)
    stored = (await browser.client.get("/api/v1/policies")).json()["items"]
    assert sorted((p["name"], p["scope"]) for p in stored) == [
        ("everyone", "global"),
        ("mine", "project"),
    ]


async def test_a_project_refuses_a_policy_profile_that_does_not_exist(
    browser: PageClient, admin_key: str, tmp_path: Path
) -> None:
    await browser.sign_in(admin_key)
    project_id = await register(browser, tmp_path)
    here = f"/projects/{project_id}"
    fields = {"version": "1", "max_attempts": "3", "timeout_seconds": "600"}
    refused = await browser.submit(here, f"{here}/settings", {**fields, "policy_profile": "nope"})
    level, said = flash_of(refused.text) or ("", "")
    assert level == "error"
    assert said.startswith("the policy profile 'nope' does not exist; choose one of: default, ")
    chosen = await browser.submit(
        here, f"{here}/settings", {**fields, "policy_profile": "plan-readonly"}
    )
    assert flash_of(chosen.text) == ("info", "Settings saved.")
    assert '<option value="plan-readonly" selected>' in chosen.text
    agent = await browser.submit(
        "/models", "/agents", {"name": "a", "model": "m", "policy_profile": "nope"}
    )
    level, said = flash_of(agent.text) or ("", "")
    assert said.startswith("the policy profile 'nope' does not exist")


async def test_a_model_health_check_says_up_with_its_latency_or_down_with_the_reason(
    browser: PageClient, admin_key: str, scripted_llm: ScriptedLLM
) -> None:
    await browser.sign_in(admin_key)
    await browser.submit(
        "/models",
        "/models",
        {"name": "scripted", "base_url": scripted_llm.base_url, "model": "scripted-model"},
    )
    await browser.submit(
        "/models", "/models", {"name": "gone", "base_url": "http://127.0.0.1:9/v1"}
    )
    models = {
        m["name"]: m["id"] for m in (await browser.client.get("/api/v1/models")).json()["items"]
    }
    assert "Not checked yet." in text_of(await browser.page("/models"))

    scripted_llm.reply("OK")
    up = await browser.submit("/models", f"/models/{models['scripted']}/check", {})
    level, said = flash_of(up.text) or ("", "")
    assert level == "info"
    assert re.fullmatch(
        r"Model scripted is up: answered in [\d,]+ ms \(scripted-model answered 'OK'\)\.", said
    ), said
    scripted_llm.assert_script_consumed()
    down = await browser.submit("/models", f"/models/{models['gone']}/check", {})
    level, said = flash_of(down.text) or ("", "")
    assert level == "error"
    assert said.startswith("Model gone is DOWN (after ")
    # The latest check of each, as the service keeps them, is on the page.
    cells = {
        name: text_of(row)
        for name, row in re.findall(
            r'<tr id="model-[^"]+">\s*<th scope="row">([^<]+)</th>(.*?)</tr>', down.text, re.S
        )
    }
    assert re.search(r"up [\d,]+ ms · a chat call, \d{4}-", cells["scripted"]), cells["scripted"]
    assert re.search(r"down [\d,]+ ms · a chat call", cells["gone"]), cells["gone"]
    assert said.split(": ", 1)[1] in cells["gone"]
