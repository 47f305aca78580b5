"""The admin pages in a real browser against a real `codeforge serve`.

Headless Chromium (tests/support/browser.py) against `codeforge serve` run as a
process of its own, a scripted OpenAI-compatible model in this process, real
PostgreSQL and git. The runs' asks come from the policy as a user configures it: a
stored profile, `ask-before-commands` (mode acceptEdits: edits are accepted, every
command waits for a yes), that the projects choose. One browser and one server serve
the whole module; each test gets a fresh browser context (its own cookies).

Every wait is for a condition on the page (Playwright's `expect`), never a sleep.
Screenshots of each page go to test-artifacts/screenshots/ (see tests/support/browser.py).
Sync tests only: Playwright's sync API cannot share the thread with an asyncio loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.support.browser import CHROMIUM, chromium, screenshot
from tests.support.processes import CodeforgeProcess, codeforge_env, free_port
from tests.support.repos import make_repo
from tests.support.scripted_llm import ScriptedLLM

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM}: run scripts/install-test-system-deps.sh",
)

ROOT = Path(__file__).resolve().parents[2]
CALC = "def add(a, b):\n    return a - b\n"
TEST = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
)
FIX = {"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}
# The profile the tests' projects choose, as a user would write it.
ASK_BEFORE_COMMANDS = """\
# Edits are accepted; every command waits for a person's yes.
description: Edits accepted; commands need a yes.
mode: acceptEdits
"""
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 860}


@dataclass
class Served:
    url: str
    admin_key: str
    process: CodeforgeProcess
    llm: ScriptedLLM
    api: httpx.Client
    ids: dict[str, str] = field(default_factory=dict)

    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.process.records if r.get("level") in ("error", "critical")]


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(chunk_delay=0.005) as server:
        yield server


@pytest.fixture(scope="module")
def served(
    make_database: Any, tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM
) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("pages-data")
    port = free_port()
    env = codeforge_env(
        CODEFORGE_DATABASE__URL=make_database(),
        CODEFORGE_DATA_DIR=str(data),
        CODEFORGE_SANDBOX__KIND="mount",
        CODEFORGE_API__STREAM_HEARTBEAT="1",
        CODEFORGE_APPROVALS__TIMEOUT_SECONDS="300",
    )
    process = CodeforgeProcess(["serve", "--port", str(port)], env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for_http(f"{url}/health")
        key = (data / "admin-key").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
            served = Served(url=url, admin_key=key, process=process, llm=llm, api=api)
            api_post(
                served,
                "/api/v1/policies",
                {"name": "ask-before-commands", "document": ASK_BEFORE_COMMANDS},
            )
            yield served
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Problems:
    """What the browser complained about: script errors, failed CSP checks, bad loads."""

    def __init__(self, page: Page) -> None:
        self.seen: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        # An error page (404, 403) is a 4xx document on purpose: Chromium logs its load.
        if message.type == "error" and "status of 4" not in message.text:
            self.seen.append(f"console: {message.text}")


@pytest.fixture
def open_page(browser: Browser, served: Served) -> Iterator[Any]:
    """Pages in fresh browser contexts (each its own cookies); problems asserted at the end."""
    contexts = []
    watchers: list[Problems] = []

    def make(viewport: dict[str, int] = LAPTOP, *, phone: bool = False) -> Page:
        context = browser.new_context(
            base_url=served.url,
            viewport=viewport,
            is_mobile=phone,
            has_touch=phone,
            accept_downloads=True,
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        watchers.append(Problems(page))
        return page

    yield make
    for context in contexts:
        context.close()
    problems = [p for w in watchers for p in w.seen]
    assert not problems, problems
    assert not served.errors(), served.errors()


@pytest.fixture
def page(open_page: Any) -> Page:
    made: Page = open_page()
    return made


def sign_in(page: Page, key: str, path: str = "/") -> None:
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#flash")).to_contain_text("Signed in")


def accept_dialogs(page: Page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


def api_post(served: Served, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = served.api.post(path, json=body)
    assert response.status_code in (201, 202), response.text
    result: dict[str, Any] = response.json()
    return result


def api_setup(served: Served, tmp_path: Path) -> dict[str, str]:
    """A model, an agent and a project made through the API (for tests that are not
    about making them); made once per module."""
    if not served.ids:
        api_post(
            served,
            "/api/v1/models",
            {"name": "api-model", "base_url": served.llm.base_url, "model": "scripted-model",
             "input_price_per_mtok": "1", "output_price_per_mtok": "2"},
        )  # fmt: skip
        agent = api_post(served, "/api/v1/agents", {"name": "api-agent", "model": "api-model"})
        source = make_repo(tmp_path / "api-repo", {"calc.py": CALC, "test_calc.py": TEST})
        project = api_post(
            served,
            "/api/v1/projects",
            {"name": "api-calc", "source": str(source), "policy_profile": "ask-before-commands"},
        )
        served.ids.update(agent_id=agent["id"], project_id=project["id"])
    return served.ids


def api_task(served: Served, tmp_path: Path, title: str) -> dict[str, str]:
    ids = api_setup(served, tmp_path)
    task = api_post(
        served,
        "/api/v1/tasks",
        {"project_id": ids["project_id"], "title": title, "prompt": "make add() add"},
    )
    return {"task_id": task["id"], "agent_id": ids["agent_id"], "project_id": ids["project_id"]}


def wait_for_run(served: Served, run_id: str, status: str, timeout: float = 60) -> None:
    """Follow the run's event stream until it ends (the server closes it then)."""
    deadline = time.monotonic() + timeout
    path = f"/api/v1/runs/{run_id}/events/stream"
    with served.api.stream("GET", path, timeout=10) as stream:
        for _ in stream.iter_lines():
            assert time.monotonic() < deadline, f"run {run_id} still going after {timeout}s"
    assert served.api.get(f"/api/v1/runs/{run_id}").json()["status"] == status


# --- the whole journey ----------------------------------------------------------------------


def test_from_sign_in_to_a_downloaded_patch_with_an_approval_on_the_way(
    page: Page, served: Served, llm: ScriptedLLM, tmp_path: Path
) -> None:
    accept_dialogs(page)
    # Sign in: the dashboard says every dependency is up.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2F$"))
    screenshot(page, "01-sign-in")
    page.get_by_label("API key").fill(served.admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#flash")).to_contain_text("Signed in (admin).")
    expect(page.locator("#readiness")).to_contain_text("Readiness: ready")
    expect(page.locator("#readiness")).to_contain_text("database")
    screenshot(page, "02-dashboard")

    # A model with prices, and an agent that uses it.
    page.get_by_role("link", name="Models").click()
    new_model = page.locator("form[action='/models']")
    new_model.get_by_label("Name", exact=True).fill("scripted")
    new_model.get_by_label("Provider model id").fill("scripted-model")
    new_model.get_by_label("Base URL").fill(llm.base_url)
    new_model.get_by_label("Input $ per 1M tokens").fill("2.5")
    new_model.get_by_label("Output $ per 1M tokens").fill("10")
    new_model.get_by_role("button", name="Add the model").click()
    expect(page.locator("#flash")).to_contain_text("Model scripted added.")
    new_agent = page.locator("form[action='/agents']")
    new_agent.get_by_label("Name", exact=True).fill("coder")
    new_agent.get_by_label("Model").select_option("scripted")
    new_agent.get_by_role("button", name="Add the agent").click()
    expect(page.locator("#flash")).to_contain_text("Agent coder added.")
    screenshot(page, "03-models")

    # A project from a local repository, with a test gate.
    source = make_repo(tmp_path / "calc", {"calc.py": CALC, "test_calc.py": TEST})
    page.get_by_role("link", name="Projects").click()
    page.get_by_label("Name", exact=True).fill("calc")
    page.get_by_label("Repository").fill(str(source))
    page.get_by_role("button", name="Register the project").click()
    expect(page.locator("#flash")).to_contain_text("Project calc registered")
    expect(page.locator("h1")).to_have_text("calc")
    expect(page.get_by_text("main (current)")).to_be_visible()
    page.get_by_label("Policy profile").select_option("ask-before-commands")
    page.get_by_label("Test command").fill("python3 -m unittest -q")
    page.get_by_label("Max diff lines").fill("50")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#flash")).to_contain_text("Settings saved.")
    expect(page.get_by_label("Test command")).to_have_value("python3 -m unittest -q")
    expect(page.get_by_label("Policy profile")).to_have_value("ask-before-commands")
    screenshot(page, "04-project")

    # A task, then a run of it.
    page.get_by_role("link", name="Add a task or start a run").click()
    new_task = page.locator("form[action='/tasks']")
    new_task.get_by_label("Title").fill("Fix add")
    new_task.get_by_label("What to do").fill("add() subtracts; make the test pass.")
    new_task.get_by_label("Acceptance criteria").fill("python3 -m unittest passes")
    new_task.get_by_role("button", name="Create the task").click()
    expect(page.locator("#flash")).to_contain_text("Task “Fix add” created.")
    task = page.locator("details.task", has_text="Fix add")
    expect(task).to_have_attribute("open", "")  # the link's #task-<id> opened it
    release = tmp_path / "release"
    # The tests run first: a program, so the profile asks (shell builtins alone never do).
    command = (
        f"python3 -m unittest -q; "
        f"while [ ! -e {release} ]; do echo waiting for the release; sleep 0.2; done; echo released"
    )
    llm.reply("Fixing add() first.", tool_calls=[("edit", FIX)])
    llm.reply("Now the tests.", tool_calls=[("bash", {"command": command})])
    llm.reply(tool_calls=[("finish", {"summary": "add() adds; the test passes"})])
    screenshot(page, "05-tasks")
    task.get_by_label("Agent").select_option(label="coder")
    task.get_by_label("Sandbox").select_option("mount")
    task.get_by_label("Max cost ($)").fill("1")
    task.get_by_role("button", name="Start the run").click()
    expect(page.locator("#flash")).to_contain_text("Run started.")
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]

    # The run asks before its command: the ask appears without a reload.
    ask = page.locator("#approvals article.ask")
    expect(ask).to_contain_text("bash asks for approval", timeout=30_000)
    expect(ask).to_contain_text(command)
    expect(page.locator("#run-summary")).to_contain_text("awaiting approval")
    expect(page.locator("#timeline")).to_contain_text("Policy: ASK bash")
    expect(page.locator("#policy")).to_contain_text("ask-before-commands")
    expect(page.locator("#diff")).to_contain_text("+    return a + b")  # the edit, so far
    screenshot(page, "06-run-asks")
    ask.get_by_role("button", name="Allow").click()
    expect(page.locator("#flash")).to_contain_text("Allowed: bash")

    # Its output arrives while it runs, before the step is stored.
    expect(page.locator("#live")).to_contain_text("waiting for the release", timeout=30_000)
    expect(page.locator("#stream-state")).to_have_text("Following the run live.")
    bash_done = page.locator("#timeline li[data-type='ToolCallCompleted']", has_text="released")
    expect(bash_done).to_have_count(0)
    expect(page.locator("#run-summary")).to_contain_text("running")
    screenshot(page, "07-run-live-output")
    release.touch()

    # It finishes: the gates passed, the result and the patch are on the page.
    expect(page.locator("#run-summary")).to_contain_text("succeeded", timeout=60_000)
    expect(page.locator("#result")).to_contain_text("SUCCEEDED: add() adds; the test passes")
    expect(page.locator("#diff")).to_contain_text("The run's patch")
    expect(page.locator("#diff")).to_contain_text("+    return a + b")
    expect(bash_done).to_have_count(1)
    expect(page.locator("#timeline")).to_contain_text("Quality gates, attempt 1: PASSED")
    expect(page.locator("#timeline")).to_contain_text("Answer: ALLOW")
    expect(page.locator("#live-section")).to_be_hidden()
    expect(page.locator("#stream-state")).to_have_text("The run has ended.")
    screenshot(page, "08-run-finished")
    with page.expect_download() as downloaded:
        page.locator("#artifact-patch").click()
    patch = Path(downloaded.value.path()).read_text()
    assert "-    return a - b\n+    return a + b\n" in patch
    assert downloaded.value.suggested_filename == f"run-{run_id}.diff"

    # The inspector: step to the checkpoint and see what it changed.
    page.get_by_role("link", name="Open the inspector").click()
    steps = page.locator("nav.steps")
    steps.get_by_role("link", name=re.compile("CheckpointCreated")).first.click()
    expect(page.locator("#selected-h")).to_contain_text("CheckpointCreated")
    expect(page.locator("#files")).to_contain_text("what this checkpoint changed")
    expect(page.locator("#files")).to_contain_text("+    return a + b")
    screenshot(page, "09-inspector")
    checkpoint_seq = int(page.url.rsplit("=", 1)[1])
    page.get_by_role("link", name=re.compile(r"Step #\d+ →")).click()
    expect(page.locator("#selected-h")).to_contain_text(f"Event #{checkpoint_seq + 1}")
    page.get_by_role("link", name=re.compile(r"← Step #\d+")).click()
    expect(page.locator("#selected-h")).to_contain_text(f"Event #{checkpoint_seq}")
    page.get_by_role("link", name="everything since the base commit").click()
    expect(page.locator("#files")).to_contain_text("1 file, +1 \u22121")  # a minus sign

    # Fork from that step: a new run continues from there and finishes on its own.
    llm.reply(tool_calls=[("finish", {"summary": "the fork agrees"})])
    page.get_by_role("button", name=f"Fork from #{checkpoint_seq}").click()
    expect(page.locator("#flash")).to_contain_text(f"Forked from event {checkpoint_seq}")
    expect(page.locator("#timeline")).to_contain_text(
        f"Forked from run {run_id.replace('-', '')[-8:]}"
    )
    expect(page.locator("#run-summary")).to_contain_text("succeeded", timeout=60_000)
    expect(page.locator("#result")).to_contain_text("the fork agrees")
    llm.assert_script_consumed()


# --- answering no, live on the dashboard -----------------------------------------------------


def test_a_deny_is_told_to_the_model_and_the_dashboard_follows_it_live(
    open_page: Any, served: Served, llm: ScriptedLLM, tmp_path: Path
) -> None:
    ids = api_task(served, tmp_path, "Try something risky")
    dashboard = open_page()
    sign_in(dashboard, served.admin_key)
    expect(dashboard.locator("#waiting")).to_contain_text("Nothing waits for an answer.")

    marker = tmp_path / "must-not-exist"
    llm.reply(tool_calls=[("bash", {"command": f"touch {marker}"})])
    llm.reply(tool_calls=[("finish", {"summary": "fine, not touching it"})])
    run = api_post(served, "/api/v1/runs", {"task_id": ids["task_id"], "agent_id": ids["agent_id"]})

    # The dashboard hears the status change and shows the ask, without a reload.
    waiting = dashboard.locator("#waiting")
    expect(waiting).to_contain_text("Awaiting approval (1)", timeout=30_000)
    expect(waiting).to_contain_text(f"touch {marker}")
    expect(dashboard.locator("#active")).to_contain_text("Try something risky")
    screenshot(dashboard, "10-dashboard-awaiting-approval")

    monitor = open_page()
    sign_in(monitor, served.admin_key, f"/runs/{run['id']}")
    ask = monitor.locator("#approvals article.ask")
    ask.get_by_label("Reason").fill("no touching")
    ask.get_by_role("button", name="Deny").click()
    expect(monitor.locator("#flash")).to_contain_text("Denied: bash")
    expect(monitor.locator("#run-summary")).to_contain_text("succeeded", timeout=60_000)
    expect(monitor.locator("#timeline")).to_contain_text("Answer: DENY (this call)")
    expect(monitor.locator("#timeline")).to_contain_text("no touching")
    assert not marker.exists()
    expect(waiting).to_contain_text("Nothing waits for an answer.", timeout=30_000)
    expect(dashboard.locator("#active")).to_contain_text("No run is active.")


# --- mistakes, roles, phones -------------------------------------------------------------------


def test_mistakes_are_messages_on_the_page_never_tracebacks(page: Page, served: Served) -> None:
    sign_in(page, served.admin_key, "/projects")
    page.get_by_label("Name", exact=True).fill("Bad Name!")
    page.get_by_label("Repository").fill("/no/such/repository")
    page.get_by_role("button", name="Register the project").click()
    flash = page.locator("#flash")
    expect(flash).to_have_attribute("role", "alert")
    expect(flash).to_contain_text("a project name is 1-63 characters")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Bad Name!")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Repository")).to_have_value("/no/such/repository")
    screenshot(page, "11-projects-error")

    page.get_by_label("Name", exact=True).fill("ghost")
    page.get_by_role("button", name="Register the project").click()
    expect(flash).to_contain_text("/no/such/repository")

    page.goto("/runs/00000000-0000-0000-0000-000000000000")
    expect(page.locator("h1")).to_contain_text("Not Found (404)")
    expect(page.locator("main")).not_to_contain_text("Traceback")
    page.goto("/no/such/page")
    expect(page.locator(".message")).to_have_text(
        "there is no page here; check the address or use the menu"
    )
    screenshot(page, "12-not-found")


def test_keys_are_shown_once_and_a_viewer_sees_no_controls(
    open_page: Any, served: Served, llm: ScriptedLLM, tmp_path: Path
) -> None:
    admin = open_page()
    accept_dialogs(admin)
    sign_in(admin, served.admin_key, "/keys")
    admin.get_by_label("Name", exact=True).fill("auditor")
    admin.get_by_label("Role").select_option("viewer")
    admin.get_by_role("button", name="Create the key").click()
    secret = admin.locator("#new-secret").inner_text()
    assert secret.startswith("cf_")
    expect(admin.locator(".secret")).to_contain_text("shown this once")
    screenshot(admin, "13-keys-created")

    ids = api_task(served, tmp_path, "Seen by a viewer")
    llm.reply(tool_calls=[("edit", FIX)])
    llm.reply(tool_calls=[("finish", {"summary": "done"})])
    run = api_post(served, "/api/v1/runs", {"task_id": ids["task_id"], "agent_id": ids["agent_id"]})
    wait_for_run(served, run["id"], "succeeded")

    viewer = open_page()
    sign_in(viewer, secret, f"/runs/{run['id']}")
    expect(viewer.locator("#run-summary")).to_contain_text("succeeded")
    preview = f"/policies/preview?project_id={ids['project_id']}&tool=bash&command=ls"
    for path in ("/", "/projects", f"/projects/{ids['project_id']}", "/tasks", "/models",
                 f"/runs/{run['id']}", f"/runs/{run['id']}/inspect", "/policies",
                 "/policies/presets/plan-readonly", preview):  # fmt: skip
        viewer.goto(path)
        expect(viewer.locator("h1")).to_be_visible()
        # No form that changes anything; the only buttons left are list filters (GET).
        expect(viewer.locator("main form[method='post']")).to_have_count(0)
        expect(viewer.locator("main button:not(form[method='get'] button)")).to_have_count(0)
    expect(viewer.get_by_role("link", name="Keys")).to_have_count(0)
    screenshot(viewer, "14-viewer-inspector")

    # Revoked, the key's session ends at its next page.
    admin.goto("/keys")
    admin.locator("tr", has_text="auditor").get_by_role("button", name="Revoke").click()
    expect(admin.locator("#flash")).to_contain_text("Key auditor revoked")
    viewer.goto("/tasks")
    expect(viewer).to_have_url(re.compile(r"/sign-in\?next=%2Ftasks"))
    expect(viewer.locator("#flash")).to_contain_text("revoked")


def test_a_profile_saved_from_a_preset_is_fixed_at_its_line_chosen_and_previewed(
    page: Page, served: Served, tmp_path: Path
) -> None:
    source = make_repo(tmp_path / "shop", {"calc.py": CALC})
    api_post(served, "/api/v1/projects", {"name": "shop", "source": str(source)})
    flash = page.locator("#flash")
    sign_in(page, served.admin_key, "/policies")
    expect(page.locator("main")).to_contain_text("ask-before-commands")
    screenshot(page, "15-policies")

    # Save a preset as a profile of the project's own.
    page.get_by_role("link", name="headless-safe-sandbox").click()
    save = page.locator("form[action='/policies/from-preset']")
    save.get_by_label("Name of the new profile").fill("shop-rules")
    save.get_by_label("Project").select_option(label="shop")
    save.get_by_role("button", name="Save as new profile").click()
    expect(flash).to_contain_text("Preset headless-safe-sandbox saved as profile shop-rules")
    expect(page.locator("h1")).to_have_text("shop-rules")

    # A misspelt rule: refused, the problem shown at its line, the text kept.
    editor = page.get_by_label("Policy document (YAML)")
    lines = editor.input_value().split("\n")
    at = lines.index("    - Bash(su:*)") + 1
    lines[at - 1] = "    - Bsh(su:*)"
    lines.insert(lines.index("  deny:") + 1, "    - rule: Bash(make deploy:*)\n"
                 "      reason: deploys go through CI")  # fmt: skip
    typed = "\n".join(lines)
    at += 2  # below the two lines added above it
    editor.fill(typed)
    page.get_by_role("button", name="Save the policy").click()
    expect(flash).to_have_attribute("role", "alert")
    expect(flash).to_contain_text(f"document:{at}: rules.deny[")
    expect(flash).to_contain_text("'Bsh(su:*)' is not a rule")
    expect(page.locator(f"#line-{at}")).to_have_class(re.compile("doc-line-error"))
    expect(page.locator(f"#line-{at}")).to_contain_text("- Bsh(su:*)")
    expect(page.locator(".doc-problem")).to_contain_text(f"Line {at}: rules.deny[")
    expect(editor).to_have_value(typed)
    expect(editor).to_have_attribute("aria-invalid", "true")
    screenshot(page, "16-policy-problem-at-its-line")
    # The problem's link puts the cursor on that line of the editor.
    page.locator("#problems").get_by_role("link", name=f"Line {at}").click()
    expect(editor).to_be_focused()
    selected = editor.evaluate("e => e.value.slice(e.selectionStart, e.selectionEnd)")
    assert selected == "    - Bsh(su:*)"

    editor.fill(typed.replace("Bsh(su:*)", "Bash(su:*)"))
    page.get_by_role("button", name="Save the policy").click()
    expect(flash).to_contain_text("Profile shop-rules saved (version 2).")

    # The project chooses it; the preview answers for the project as its runs would.
    page.get_by_role("link", name="Projects").click()
    page.get_by_role("link", name="shop", exact=True).click()
    page.get_by_label("Policy profile").select_option("shop-rules")
    page.get_by_role("button", name="Save settings").click()
    expect(flash).to_contain_text("Settings saved.")
    page.get_by_role("link", name="Preview what a call gets →").click()
    expect(page.get_by_label("Project")).to_have_value(re.compile(r"[0-9a-f-]{36}"))
    page.get_by_label("Sandbox").select_option("mount")
    page.get_by_label("Command").fill("make test && make deploy")
    page.get_by_role("button", name="Preview").click()
    decision = page.locator("#decision")
    expect(decision).to_contain_text("Decision: DENY")
    expect(decision).to_contain_text("Bash(make deploy:*)")
    expect(decision).to_contain_text("deploys go through CI")
    expect(decision).to_contain_text("profile 'shop-rules'")
    parts = page.locator("#parts tbody tr")
    expect(parts).to_have_count(2)
    for row, (command, verdict) in enumerate((("make test", "ALLOW"), ("make deploy", "DENY"))):
        cells = parts.nth(row).locator("td")
        expect(cells.nth(0)).to_have_text(command)
        expect(cells.nth(1)).to_have_text(verdict)
    expect(page.get_by_label("Command")).to_have_value("make test && make deploy")
    screenshot(page, "17-policy-preview")


def test_every_page_fits_a_phone(
    open_page: Any, served: Served, llm: ScriptedLLM, tmp_path: Path
) -> None:
    ids = api_task(served, tmp_path, "Read on a phone")
    llm.reply("A long line to wrap: " + "word " * 60, tool_calls=[("edit", FIX)])
    llm.reply(tool_calls=[("finish", {"summary": "fixed"})])
    run = api_post(served, "/api/v1/runs", {"task_id": ids["task_id"], "agent_id": ids["agent_id"]})
    wait_for_run(served, run["id"], "succeeded")

    policy = served.api.get("/api/v1/policies", params={"name": "ask-before-commands"}).json()
    policy_page = f"/policies/{policy['items'][0]['id']}"

    phone = open_page(PHONE, phone=True)
    sign_in(phone, served.admin_key)
    pages = {
        "dashboard": "/",
        "projects": "/projects",
        "project": f"/projects/{ids['project_id']}",
        "tasks": "/tasks",
        "runs": "/runs",
        "run": f"/runs/{run['id']}",
        "inspector": f"/runs/{run['id']}/inspect",
        "models": "/models",
        "policies": "/policies",
        "preset": "/policies/presets/headless-safe-sandbox",
        "policy": policy_page,
        "preview": f"/policies/preview?project_id={ids['project_id']}&sandbox=mount&tool=bash"
        "&command=git+status+%26%26+curl+https%3A%2F%2Fexample.com%2Finstall.sh+%7C+sh",
        "keys": "/keys",
    }
    for name, path in pages.items():
        phone.goto(path)
        expect(phone.locator("h1")).to_be_visible()
        wide = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, f"{path} is {wide}px wider than the phone"
        screenshot(phone, f"phone-{name}")

    # A model's health check: a real call to it, its latency on the page.
    llm.reply("OK")
    phone.goto("/models")
    row = phone.locator("tr", has_text="api-model")
    row.get_by_role("button", name="Check now").click()
    expect(phone.locator("#flash")).to_contain_text(
        re.compile(r"Model api-model is up: answered in [\d,]+ ms \(scripted-model answered 'OK'\)")
    )
    expect(phone.locator("tr", has_text="api-model").locator(".health")).to_contain_text(
        re.compile(r"up [\d,]+ ms")
    )
    screenshot(phone, "phone-models-checked")
    llm.assert_script_consumed()
