"""The git host contract (codeforge.ports.git_host), run against every adapter.

Each adapter talks to the scripted git host of its kind (`tests/support/scripted_git_host.py`),
which serves the host's real REST API shapes and real git repositories over HTTP. The
`host` fixture is the one place adapters are listed; tests that look at what went over
the wire say per kind what the host's API expects.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.git import LocalGit
from adapters.git_host import GiteaHost, GitHubHost, GitLabHost
from codeforge.domain.errors import NotFound, ValidationFailed
from codeforge.ports.errors import DependencyUnavailable
from codeforge.ports.git_host import (
    GitHost,
    GitHostAuthFailed,
    GitHostBadResponse,
    GitHostError,
    GitHostNotFound,
    GitHostRateLimited,
    GitHostRejected,
    GitHostUnavailable,
    HostTarget,
    PullRequestSpec,
)
from codeforge.ports.vcs import PushCredentials
from tests.support.processes import free_port
from tests.support.scripted_git_host import KINDS, ScriptedGitHost

pytestmark = pytest.mark.contract

REPO = "acme/app"
ADAPTERS = {"github": GitHubHost, "gitlab": GitLabHost, "gitea": GiteaHost}


@dataclass
class Harness:
    adapter: GitHost
    server: ScriptedGitHost
    work: Path
    """A clone of the repository, for making branches to open pull requests from."""

    @property
    def kind(self) -> str:
        return self.server.kind

    def target(self, **changes: Any) -> HostTarget:
        fields = {"api_url": self.server.api_url, "repository": REPO, "token": self.server.token}
        return HostTarget(**(fields | changes))

    def branch(self, name: str, content: str = "change\n") -> str:
        """A branch with one commit on top of main, pushed to the host."""
        git = LocalGit()
        subprocess.run(["git", "-C", str(self.work), "switch", "-q", "main"], check=True)
        subprocess.run(["git", "-C", str(self.work), "switch", "-q", "-c", name], check=True)
        (self.work / f"{name.replace('/', '_')}.txt").write_text(content)
        git.commit(self.work, f"work on {name}", author_name="T", author_email="t@example.com")
        creds = PushCredentials(self.adapter.push_username, self.server.token)
        return git.push(self.work, name, credentials=creds).commit

    def spec(self, head: str, **changes: Any) -> PullRequestSpec:
        fields = {
            "head": head,
            "base": "main",
            "title": "Fix add()",
            "body": "It adds now.\n\n<!-- codeforge:task=t1 -->",
            "draft": True,
        }
        return PullRequestSpec(**(fields | changes))


@pytest.fixture(params=KINDS)
async def host(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    kind = request.param
    with ScriptedGitHost(kind, tmp_path / "host") as server:
        server.create_repository(REPO, {"calc.py": "def add(a, b):\n    return a - b\n"})
        work = tmp_path / "work"
        LocalGit().clone(server.clone_url(REPO), work)
        adapter = ADAPTERS[kind](backoff_base=0.01, retry_after_cap=2.0, timeout=5.0)
        yield Harness(adapter, server, work)
        await adapter.close()


# ---------------------------------------------------------------------------- opening


async def test_a_pull_request_is_opened_with_the_hosts_own_request_shape(host: Harness) -> None:
    host.branch("codeforge/run-1")

    pull = await host.adapter.open_pull_request(host.target(), host.spec("codeforge/run-1"))

    [sent] = [r for r in host.server.api_requests if r.method == "POST"]
    [made] = host.server.pulls(REPO)
    assert (pull.number, pull.head, pull.base, pull.draft) == (made.number, "codeforge/run-1",
                                                                "main", True)  # fmt: skip
    assert made.body == "It adds now.\n\n<!-- codeforge:task=t1 -->"
    token = host.server.token
    if host.kind == "github":
        assert sent.path == "/api/v3/repos/acme/app/pulls"
        assert sent.headers["Authorization"] == f"Bearer {token}"
        assert sent.headers["Accept"] == "application/vnd.github+json"
        assert sent.headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert sent.json == {
            "title": "Fix add()",
            "head": "codeforge/run-1",
            "base": "main",
            "body": made.body,
            "draft": True,
            "maintainer_can_modify": True,
        }
        assert pull.title == "Fix add()"
        assert pull.url.endswith(f"/acme/app/pull/{made.number}")
    elif host.kind == "gitlab":
        assert sent.path == "/api/v4/projects/acme%2Fapp/merge_requests"
        assert sent.headers["PRIVATE-TOKEN"] == token
        assert "Authorization" not in sent.headers
        assert sent.json == {
            "source_branch": "codeforge/run-1",
            "target_branch": "main",
            "title": "Draft: Fix add()",
            "description": made.body,
            "remove_source_branch": True,
        }
        assert pull.url.endswith(f"/acme/app/-/merge_requests/{made.number}")
    else:
        assert sent.path == "/api/v1/repos/acme/app/pulls"
        assert sent.headers["Authorization"] == f"token {token}"
        assert sent.json == {
            "head": "codeforge/run-1",
            "base": "main",
            "title": "WIP: Fix add()",
            "body": made.body,
        }
        assert pull.url.endswith(f"/acme/app/pulls/{made.number}")
    assert host.server.branches(REPO)["codeforge/run-1"]


async def test_a_ready_pull_request_is_not_marked_draft_in_any_way(host: Harness) -> None:
    host.branch("ready")

    pull = await host.adapter.open_pull_request(host.target(), host.spec("ready", draft=False))

    [sent] = [r for r in host.server.api_requests if r.method == "POST"]
    assert pull.draft is False
    assert pull.title == "Fix add()"
    assert sent.json.get("draft", False) is False
    assert sent.json["title"] == "Fix add()"


async def test_a_title_that_already_says_draft_is_not_prefixed_twice(host: Harness) -> None:
    host.branch("twice")
    title = {"github": "Fix", "gitlab": "Draft: Fix", "gitea": "WIP: Fix"}[host.kind]

    pull = await host.adapter.open_pull_request(host.target(), host.spec("twice", title=title))

    assert pull.title == title
    assert pull.draft


async def test_a_gitlab_project_can_be_named_by_its_numeric_id(host: Harness) -> None:
    if host.kind != "gitlab":
        pytest.skip("only GitLab names projects by id")
    host.branch("by-id")

    pull = await host.adapter.open_pull_request(host.target(repository="1"), host.spec("by-id"))

    assert pull.number == 1
    assert host.server.api_requests[-1].path == "/api/v4/projects/1/merge_requests"


# ---------------------------------------------------------------------------- finding


async def test_the_open_pull_request_carrying_the_marker_is_found_across_pages(
    host: Harness,
) -> None:
    marker = "<!-- codeforge:task=wanted -->"
    for n in range(10):
        host.server.add_pull(REPO, title=f"other {n}", head=f"other-{n}", body="unrelated")
    host.server.add_pull(REPO, title="closed", head="c", body=marker, state="closed")
    host.server.add_pull(REPO, title="elsewhere", head="e", base="develop", body=marker)
    wanted = host.server.add_pull(REPO, title="mine", head="codeforge/run-7", body=f"x {marker}")
    for n in range(120):  # newer ones: listed first, so the wanted one is on a later page
        host.server.add_pull(REPO, title=f"newer {n}", head=f"newer-{n}", body="unrelated")

    found = await host.adapter.find_pull_request(host.target(), base="main", marker=marker)

    assert found is not None
    assert (found.number, found.head, found.base) == (wanted.number, "codeforge/run-7", "main")
    lists = [r for r in host.server.api_requests if r.method == "GET"]
    assert len(lists) >= 2, "the marker was on a later page"
    assert [r.query["page"] for r in lists] == [str(n) for n in range(1, len(lists) + 1)]
    if host.kind == "github":
        assert lists[0].query == {"state": "open", "base": "main", "per_page": "100", "page": "1"}
    elif host.kind == "gitlab":
        assert lists[0].query == {"state": "opened", "target_branch": "main", "per_page": "100",
                                  "page": "1"}  # fmt: skip
    else:
        assert lists[0].query == {"state": "open", "limit": "50", "page": "1"}


async def test_no_pull_request_is_found_when_none_carries_the_marker(host: Harness) -> None:
    for n in range(3):
        host.server.add_pull(REPO, title=f"other {n}", head=f"other-{n}", body="nothing")
    host.server.add_pull(REPO, title="closed", head="c", body="<!-- m -->", state="closed")

    found = await host.adapter.find_pull_request(host.target(), base="main", marker="<!-- m -->")

    assert found is None
    assert len([r for r in host.server.api_requests if r.method == "GET"]) == 1


async def test_an_empty_repository_has_no_pull_request(host: Harness) -> None:
    assert await host.adapter.find_pull_request(host.target(), base="main", marker="m") is None


# ---------------------------------------------------------------------------- failures


async def test_a_wrong_token_is_auth_failed_and_never_shown(host: Harness) -> None:
    wrong = "wrong-token-Yq81mZ3pL0"

    with pytest.raises(GitHostAuthFailed) as caught:
        await host.adapter.find_pull_request(host.target(token=wrong), base="main", marker="m")

    assert caught.value.status == 401
    assert wrong not in str(caught.value)
    assert "token" in str(caught.value)
    assert "git_host.token_secret" in str(caught.value)


async def test_a_token_that_may_not_do_it_is_auth_failed(host: Harness) -> None:
    host.branch("forbidden")
    host.server.fail(403, endpoint="create")

    with pytest.raises(GitHostAuthFailed, match="write access") as caught:
        await host.adapter.open_pull_request(host.target(), host.spec("forbidden"))
    assert caught.value.status == 403


async def test_an_unknown_repository_is_not_found(host: Harness) -> None:
    with pytest.raises(GitHostNotFound) as caught:
        await host.adapter.find_pull_request(
            host.target(repository="acme/missing"), base="main", marker="m"
        )
    assert isinstance(caught.value, NotFound)
    assert "acme/missing" in str(caught.value)


async def test_a_second_pull_request_for_the_same_branch_is_rejected_in_the_hosts_words(
    host: Harness,
) -> None:
    host.branch("dup")
    await host.adapter.open_pull_request(host.target(), host.spec("dup"))

    with pytest.raises(GitHostRejected) as caught:
        await host.adapter.open_pull_request(host.target(), host.spec("dup"))

    assert isinstance(caught.value, ValidationFailed)
    assert caught.value.status in (409, 422)
    assert "already exists" in str(caught.value)


async def test_a_branch_the_host_does_not_have_is_refused(host: Harness) -> None:
    with pytest.raises(GitHostError) as caught:
        await host.adapter.open_pull_request(host.target(), host.spec("never-pushed"))
    # GitHub and GitLab validate (422), Gitea answers 404 for a missing head branch.
    assert isinstance(caught.value, GitHostRejected | GitHostNotFound)
    assert host.server.pulls(REPO) == []


async def test_a_short_rate_limit_is_waited_out_and_the_call_succeeds(host: Harness) -> None:
    host.branch("later")
    host.server.fail(429, endpoint="create", retry_after=0.2)

    pull = await host.adapter.open_pull_request(host.target(), host.spec("later"))

    assert pull.number == 1
    posts = [r for r in host.server.api_requests if r.method == "POST"]
    assert [r.status for r in posts] == [429, 201]


async def test_a_long_rate_limit_fails_at_once_saying_when_to_retry(host: Harness) -> None:
    host.server.rate_limited(retry_after=3600)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(GitHostRateLimited) as caught:
        await host.adapter.find_pull_request(host.target(), base="main", marker="m")

    assert loop.time() - started < 2
    assert caught.value.retry_after is not None
    assert 3500 < caught.value.retry_after <= 3600
    assert "rate limit" in str(caught.value)


async def test_a_server_error_is_retried_then_unavailable(host: Harness) -> None:
    host.server.fail(502, endpoint="list")
    assert await host.adapter.find_pull_request(host.target(), base="main", marker="m") is None

    for _ in range(3):
        host.server.fail(503, endpoint="list")
    with pytest.raises(GitHostUnavailable) as caught:
        await host.adapter.find_pull_request(host.target(), base="main", marker="m")
    assert isinstance(caught.value, DependencyUnavailable)
    assert caught.value.status == 503


async def test_an_unreachable_host_is_unavailable(host: Harness) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api"
    with pytest.raises(GitHostUnavailable, match="could not be reached"):
        await host.adapter.find_pull_request(host.target(api_url=dead), base="main", marker="m")


async def test_a_reply_that_is_not_json_is_a_bad_response(host: Harness) -> None:
    host.server.fail(200, endpoint="list", body="<html>login page</html>")
    with pytest.raises(GitHostBadResponse, match="api_url"):
        await host.adapter.find_pull_request(host.target(), base="main", marker="m")


async def test_a_token_the_host_echoes_back_is_scrubbed_from_the_error(host: Harness) -> None:
    token = host.server.token
    host.server.fail(422, endpoint="list", body={"message": f"token {token} is not valid here"})

    with pytest.raises(GitHostRejected) as caught:
        await host.adapter.find_pull_request(host.target(), base="main", marker="m")

    assert token not in str(caught.value)
    assert "token *** is not valid here" in str(caught.value)


async def test_a_bad_api_url_is_refused_before_anything_is_sent(host: Harness) -> None:
    for url in ("ftp://host/api", "https://user:pw@host/api", "not a url"):
        with pytest.raises(GitHostRejected, match="api_url"):
            await host.adapter.find_pull_request(host.target(api_url=url), base="main", marker="m")
    assert host.server.api_requests == []


def test_a_target_never_shows_its_token() -> None:
    target = HostTarget(api_url="https://api.github.com", repository="a/b", token="ghp_secret123")
    assert "ghp_secret123" not in repr(target)
    assert "ghp_secret123" not in str(target)


def test_errors_carry_domain_meanings() -> None:
    assert issubclass(GitHostNotFound, NotFound)
    assert issubclass(GitHostRejected, ValidationFailed)
    assert issubclass(GitHostUnavailable, DependencyUnavailable)
    for kind, cls in ADAPTERS.items():
        assert cls.kind == kind
    assert {cls.push_username for cls in ADAPTERS.values()} == {"x-access-token", "oauth2"}
