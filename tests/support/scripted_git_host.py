"""A scripted git host: GitHub's, GitLab's or Gitea's REST API, and git over HTTP.

The tests' stand-in for a git host. Like the scripted LLM server it runs in a thread of
its own with its own event loop, on 127.0.0.1 and a free port, so async tests and
blocking ones (a `git push` subprocess) can both talk to it:

    with ScriptedGitHost("github", tmp_path) as host:
        host.create_repository("acme/app", {"calc.py": "..."})
        clone_url = host.clone_url("acme/app")     # http://127.0.0.1:P/acme/app.git
        api_url = host.api_url                     # http://127.0.0.1:P/api/v3
        ...                                        # push with host.token, open a PR
        [pr] = host.pulls("acme/app")

**Repositories** are real bare repositories under `root`, served over git's smart HTTP
protocol by `git http-backend`. Reading is anonymous (a public repository); pushing
needs HTTP Basic auth whose password is the host's `token` (any user name, as the real
hosts accept a token), else 401 with a `WWW-Authenticate` challenge. `protect(repo)`
installs a `pre-receive` hook that refuses every push, the way a protected branch does.

**The REST API** is the one of `kind`, as each host documents it, and checks what it is
sent as strictly as the real host would, or more (a field the host does not know is a
422 here, so a body meant for another host fails loudly):

- github, root `/api/v3`: `GET|POST /repos/{owner}/{repo}/pulls`; `Authorization:
  Bearer <t>` or `token <t>`; `Accept: application/vnd.github+json` and
  `X-GitHub-Api-Version` required (400 without); create takes `title`, `head`, `base`,
  `body`, `draft`, `maintainer_can_modify`, `head_repo`, `issue`; list takes `state`,
  `head` (`owner:branch`), `base`, `sort`, `direction`, `per_page` (≤ 100, default 30),
  `page`, answered with a `Link` header.
- gitlab, root `/api/v4`: `GET|POST /projects/{id}/merge_requests`, `{id}` numeric or
  the URL-encoded path (an unencoded `/` is a 404, as on GitLab); `PRIVATE-TOKEN: <t>` or
  `Authorization: Bearer <t>`; create takes `source_branch`, `target_branch`, `title`,
  `description` and GitLab's other attributes — no `draft` (a draft is a `Draft:` title);
  list takes `state` (`opened`, …), `source_branch`, `target_branch`, `per_page` (≤ 100,
  default 20), `page`, answered with `X-Page`, `X-Next-Page`, `X-Total` and `Link`.
- gitea, root `/api/v1`: `GET|POST /repos/{owner}/{repo}/pulls`; `Authorization: token
  <t>` or `Bearer <t>`; create takes `head`, `base`, `title`, `body`, `assignee(s)`,
  `labels`, `milestone`, `due_date`, `reviewers`, `team_reviewers` — no `draft` (a `WIP:`
  title is one); list takes `state`, `sort`, `milestone`, `labels`, `poster`, `page`,
  `limit` (≤ 50, default 30), answered with `Link` and `X-Total-Count`.

Creating checks, like the hosts: both branches exist in the repository, they differ,
and no open pull request has the same head and base (GitHub 422 "A pull request already
exists", GitLab 409, Gitea 409). A wrong or missing token is 401 in the host's words,
an unknown repository 404. `add_pull(...)` seeds pull requests (to test paging).

**Failures on cue**: `fail(status, endpoint="create" | "list" | "any", retry_after=…,
body=…, headers=…)` answers the next matching API request with that status and the
host's usual error body; `rate_limited(...)` does it the host's way (GitHub: 403 with
`x-ratelimit-remaining: 0` and `x-ratelimit-reset`; the others: 429 with Retry-After).
A `body` that is a string is sent as it is, as text/html (a login page, a proxy's error).

Every request is recorded (`requests`, `api_requests`, `git_requests`: method, path,
query, headers, JSON body, status).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlencode

import pytest
from aiohttp import web

__all__ = ["PullRecord", "RecordedRequest", "ScriptedGitHost", "scripted_git_host"]

Kind = Literal["github", "gitlab", "gitea"]
Endpoint = Literal["create", "list", "any"]
KINDS: tuple[Kind, ...] = ("github", "gitlab", "gitea")
API_ROOT = {"github": "/api/v3", "gitlab": "/api/v4", "gitea": "/api/v1"}
IDENTITY = {
    "GIT_AUTHOR_NAME": "Host",
    "GIT_AUTHOR_EMAIL": "host@example.com",
    "GIT_COMMITTER_NAME": "Host",
    "GIT_COMMITTER_EMAIL": "host@example.com",
}

CREATE_FIELDS: dict[Kind, set[str]] = {
    "github": {"title", "head", "base", "body", "draft", "maintainer_can_modify", "head_repo",
               "issue"},
    "gitlab": {"source_branch", "target_branch", "title", "description", "assignee_id",
               "assignee_ids", "reviewer_ids", "labels", "milestone_id", "remove_source_branch",
               "allow_collaboration", "allow_maintainer_to_push", "squash", "target_project_id",
               "approvals_before_merge", "merge_after"},
    "gitea": {"head", "base", "title", "body", "assignee", "assignees", "labels", "milestone",
              "due_date", "reviewers", "team_reviewers"},
}  # fmt: skip
LIST_PARAMS: dict[Kind, set[str]] = {
    "github": {"state", "head", "base", "sort", "direction", "per_page", "page"},
    "gitlab": {"state", "source_branch", "target_branch", "per_page", "page", "order_by",
               "sort", "search", "in", "labels", "author_id", "wip", "draft", "view",
               "scope"},
    "gitea": {"state", "sort", "milestone", "labels", "poster", "page", "limit"},
}  # fmt: skip
PAGE_SIZE: dict[Kind, tuple[int, int]] = {"github": (30, 100), "gitlab": (20, 100),
                                          "gitea": (30, 50)}  # fmt: skip
OPEN_STATE = {"github": "open", "gitlab": "opened", "gitea": "open"}
GITLAB_DRAFT = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s|draft\s)", re.IGNORECASE)
GITEA_WIP = ("wip:", "[wip]")


# ---------------------------------------------------------------------------- records


@dataclass
class PullRecord:
    repo: str
    number: int
    title: str
    body: str
    head: str
    base: str
    draft: bool = False
    state: str = "open"
    """"open", "closed" or "merged"."""
    id: int = 0


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    kind: Literal["api", "git"]
    status: int | None = None


@dataclass
class _Failure:
    status: int
    endpoint: Endpoint
    body: Any
    headers: dict[str, str]


@dataclass
class _Repo:
    path: str
    id: int
    bare: Path
    protected: bool = False


@dataclass
class _State:
    repos: dict[str, _Repo] = field(default_factory=dict)
    pulls: list[PullRecord] = field(default_factory=list)
    failures: deque[_Failure] = field(default_factory=deque)
    records: list[RecordedRequest] = field(default_factory=list)


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | IDENTITY
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


# ---------------------------------------------------------------------------- the server


class ScriptedGitHost:
    def __init__(
        self,
        kind: Kind,
        root: Path,
        *,
        token: str = "hosttoken-9f3kQ2xLr8Vw",
        owner: str = "codeforge-bot",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.kind: Kind = kind
        self.root = root
        self.token = token
        self.owner = owner
        """The token's user, shown as the author of pull requests."""
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._state = _State()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        root.mkdir(parents=True, exist_ok=True)

    # -- life ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + API_ROOT[self.kind]

    def clone_url(self, repo: str) -> str:
        return f"{self.url}/{repo}.git"

    def start(self) -> ScriptedGitHost:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as e:
                failure.append(e)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"scripted-{self.kind}", daemon=True)
        self._thread.start()
        if not started.wait(30) or failure:
            self._thread = None
            raise RuntimeError(f"the scripted git host did not start: {failure[:1]}")
        return self

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> ScriptedGitHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=512 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # -- set-up and script --------------------------------------------------------------------

    def create_repository(
        self, repo: str, files: Mapping[str, str] | None = None, *, branch: str = "main"
    ) -> Path:
        """A bare repository `repo` ("owner/name", GitLab: "group/sub/name") with one
        commit of `files` on `branch`."""
        bare = self.root / f"{repo}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        _git(self.root, "init", "-q", "--bare", "-b", branch, str(bare))
        _git(bare, "config", "http.receivepack", "true")
        seed = self.root / ".seed" / repo
        seed.mkdir(parents=True, exist_ok=True)
        _git(seed, "init", "-q", "-b", branch)
        for name, text in (files or {"README.md": "# demo\n"}).items():
            (seed / name).parent.mkdir(parents=True, exist_ok=True)
            (seed / name).write_text(text)
        _git(seed, "add", "-A")
        _git(seed, "commit", "-q", "-m", "initial")
        _git(seed, "push", "-q", str(bare), f"{branch}:{branch}")
        with self._lock:
            self._state.repos[repo] = _Repo(path=repo, id=len(self._state.repos) + 1, bare=bare)
        return bare

    def delete_repository(self, repo: str) -> None:
        """The repository is gone (deleted or renamed on the host): git and the API say 404."""
        with self._lock:
            hosted = self._state.repos.pop(repo)
        shutil.rmtree(hosted.bare)

    def protect(
        self, repo: str, message: str = "branch protection: pushes are not allowed"
    ) -> None:
        """Refuse every push to `repo` from now on (a `pre-receive` hook), saying `message`."""
        with self._lock:
            hosted = self._state.repos[repo]
            hosted.protected = True
        hook = hosted.bare / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\necho {json.dumps(message)} >&2\nexit 1\n")
        hook.chmod(0o755)

    def branches(self, repo: str) -> dict[str, str]:
        """Branch name -> commit, as the repository holds them now."""
        with self._lock:
            bare = self._state.repos[repo].bare
        out = _git(bare, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def add_pull(
        self,
        repo: str,
        *,
        title: str,
        head: str,
        base: str = "main",
        body: str = "",
        draft: bool = False,
        state: str = "open",
    ) -> PullRecord:
        """A pull request that exists already (no branch checks: it is only listed)."""
        with self._lock:
            record = PullRecord(
                repo=repo,
                number=len(self._state.pulls) + 1,
                id=1000 + len(self._state.pulls),
                title=title,
                body=body,
                head=head,
                base=base,
                draft=draft,
                state=state,
            )
            self._state.pulls.append(record)
        return record

    def pulls(self, repo: str | None = None) -> list[PullRecord]:
        with self._lock:
            return [p for p in self._state.pulls if repo is None or p.repo == repo]

    def fail(
        self,
        status: int = 500,
        *,
        endpoint: Endpoint = "any",
        retry_after: float | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ScriptedGitHost:
        """Answer the next API request to `endpoint` with `status` (the host's usual body)."""
        sent = dict(headers or {})
        if retry_after is not None:
            sent["Retry-After"] = f"{retry_after:g}"
        with self._lock:
            self._state.failures.append(
                _Failure(status, endpoint, body if body is not None else self._error_body(status),
                         sent)
            )  # fmt: skip
        return self

    def rate_limited(self, *, retry_after: float = 60, endpoint: Endpoint = "any") -> None:
        """The host's own way of saying "too many requests"."""
        if self.kind == "github":
            reset = int(time.time() + retry_after)
            self.fail(
                403,
                endpoint=endpoint,
                body={
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits",
                },
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            )
        else:
            self.fail(429, endpoint=endpoint, retry_after=retry_after)

    # -- what was received --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.records)

    @property
    def api_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "api"]

    @property
    def git_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "git"]

    # -- dispatch -----------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        if raw.startswith(API_ROOT[self.kind] + "/"):
            return await self._api(request, raw[len(API_ROOT[self.kind]) :])
        match = re.match(r"^/(?P<repo>.+?)\.git(?P<rest>/.*)$", raw)
        if match:
            return await self._git_http(request, unquote(match["repo"]), match["rest"])
        return web.json_response({"message": "Not Found"}, status=404)

    def _record(
        self, request: web.Request, kind: Literal["api", "git"], body: bytes
    ) -> RecordedRequest:
        try:
            parsed = json.loads(body) if body and kind == "api" else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            method=request.method,
            path=request.raw_path.split("?", 1)[0],
            query=dict(request.query),
            headers=dict(request.headers),
            json=parsed,
            kind=kind,
        )
        with self._lock:
            self._state.records.append(record)
        return record

    def _answer(
        self, record: RecordedRequest, body: Any, status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:  # fmt: skip
        record.status = status
        if isinstance(body, str | bytes):  # a proxy's page, a wrong API URL: not JSON
            raw = body.encode() if isinstance(body, str) else body
            return web.Response(
                body=raw, status=status, headers=dict(headers or {}), content_type="text/html"
            )
        return web.json_response(body, status=status, headers=dict(headers or {}))

    # -- the REST API --------------------------------------------------------------------------

    async def _api(self, request: web.Request, path: str) -> web.StreamResponse:
        body = await request.read()
        record = self._record(request, "api", body)
        if self.kind == "gitlab":
            m = re.fullmatch(r"/projects/(?P<id>[^/]+)/merge_requests", path)
            repo_key = self._gitlab_project(unquote(m["id"])) if m else None
        else:
            m = re.fullmatch(r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/pulls", path)
            repo_key = f"{unquote(m['owner'])}/{unquote(m['name'])}" if m else None
        if m is None or request.method not in ("GET", "POST"):
            return self._answer(record, self._error_body(404), 404)
        endpoint: Endpoint = "create" if request.method == "POST" else "list"
        failure = self._take_failure(endpoint)
        if failure is not None:
            return self._answer(record, failure.body, failure.status, failure.headers)
        refused = self._check_auth(request)
        if refused is not None:
            return self._answer(record, refused, 401)
        shape = self._check_headers(request)
        if shape is not None:
            return self._answer(record, {"message": shape}, 400)
        with self._lock:
            hosted = self._state.repos.get(repo_key or "")
        if hosted is None:
            return self._answer(record, self._error_body(404), 404)
        if endpoint == "list":
            return self._list(request, record, hosted)
        return self._create(record, hosted)

    def _gitlab_project(self, ident: str) -> str | None:
        with self._lock:
            for repo in self._state.repos.values():
                if ident == str(repo.id) or ident == repo.path:
                    return repo.path
        return None

    def _take_failure(self, endpoint: Endpoint) -> _Failure | None:
        with self._lock:
            for failure in self._state.failures:
                if failure.endpoint in (endpoint, "any"):
                    self._state.failures.remove(failure)
                    return failure
        return None

    def _check_auth(self, request: web.Request) -> Any:
        headers = request.headers
        if self.kind == "gitlab":
            given = headers.get("PRIVATE-TOKEN") or _bearer(headers.get("Authorization", ""))
            return None if given == self.token else {"message": "401 Unauthorized"}
        auth = headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not value:
            if self.kind == "github":
                return {"message": "Requires authentication",
                        "documentation_url": "https://docs.github.com/rest"}  # fmt: skip
            return {"message": "token is required", "url": f"{self.url}/api/swagger"}
        if value != self.token:
            if self.kind == "github":
                return {"message": "Bad credentials",
                        "documentation_url": "https://docs.github.com/rest"}  # fmt: skip
            return {"message": "user does not exist [uid: 0, name: ]",
                    "url": f"{self.url}/api/swagger"}  # fmt: skip
        return None

    def _check_headers(self, request: web.Request) -> str | None:
        if self.kind != "github":
            return None
        if request.headers.get("Accept") != "application/vnd.github+json":
            return "scripted github: send Accept: application/vnd.github+json"
        if not request.headers.get("X-GitHub-Api-Version"):
            return "scripted github: send X-GitHub-Api-Version"
        if not request.headers.get("User-Agent"):
            return "scripted github: GitHub refuses requests without a User-Agent"
        return None

    def _list(self, request: web.Request, record: RecordedRequest, hosted: _Repo) -> web.Response:
        query = request.query
        unknown = set(query) - LIST_PARAMS[self.kind]
        if unknown:
            return self._answer(
                record, {"message": f"scripted {self.kind}: unknown list parameters {unknown}"},
                422,
            )  # fmt: skip
        default, cap = PAGE_SIZE[self.kind]
        size_key = "limit" if self.kind == "gitea" else "per_page"
        try:
            size = min(int(query.get(size_key, default)), cap)
            page = max(int(query.get("page", 1)), 1)
        except ValueError:
            return self._answer(record, {"message": "page and size must be numbers"}, 400)
        # GitLab lists every state unless asked; GitHub and Gitea list open ones.
        state = query.get("state", "all" if self.kind == "gitlab" else "open")
        wanted = []
        for pull in self.pulls(hosted.path):
            if not self._state_matches(pull, state):
                continue
            if self.kind == "github":
                if "base" in query and pull.base != query["base"]:
                    continue
                if "head" in query and query["head"] != f"{hosted.path.split('/')[0]}:{pull.head}":
                    continue
            if self.kind == "gitlab":
                if "target_branch" in query and pull.base != query["target_branch"]:
                    continue
                if "source_branch" in query and pull.head != query["source_branch"]:
                    continue
            wanted.append(pull)
        wanted.sort(key=lambda p: p.number, reverse=True)  # newest first, as the hosts do
        pages = max(1, -(-len(wanted) // size))
        chosen = wanted[(page - 1) * size : page * size]
        headers = self._page_headers(request, page, pages, size, len(wanted))
        return self._answer(record, [self._view(hosted, p) for p in chosen], 200, headers)

    def _state_matches(self, pull: PullRecord, state: str) -> bool:
        if state == "all":
            return True
        if pull.state == "open":
            return state == OPEN_STATE[self.kind]
        return state == (pull.state if self.kind == "gitlab" else "closed")

    def _page_headers(
        self, request: web.Request, page: int, pages: int, size: int, total: int
    ) -> dict[str, str]:
        def link(number: int) -> str:
            params = dict(request.query) | {"page": str(number)}
            return f"{self.url}{request.path}?{urlencode(params)}"

        links = []
        if page < pages:
            links.append(f'<{link(page + 1)}>; rel="next"')
            links.append(f'<{link(pages)}>; rel="last"')
        if page > 1:
            links.append(f'<{link(1)}>; rel="first"')
            links.append(f'<{link(page - 1)}>; rel="prev"')
        headers = {"Link": ", ".join(links)} if links else {}
        if self.kind == "gitlab":
            headers |= {
                "X-Page": str(page),
                "X-Per-Page": str(size),
                "X-Next-Page": str(page + 1) if page < pages else "",
                "X-Prev-Page": str(page - 1) if page > 1 else "",
                "X-Total": str(total),
                "X-Total-Pages": str(pages),
            }
        if self.kind == "gitea":
            headers["X-Total-Count"] = str(total)
        return headers

    def _create(self, record: RecordedRequest, hosted: _Repo) -> web.Response:
        data = record.json
        if not isinstance(data, dict):
            return self._answer(record, {"message": "Problems parsing JSON"}, 400)
        unknown = set(data) - CREATE_FIELDS[self.kind]
        if unknown:
            return self._answer(
                record,
                {"message": f"scripted {self.kind}: unknown fields {sorted(unknown)} (the host "
                            "would ignore them; this server refuses them)"},
                422,
            )  # fmt: skip
        names = {
            "github": ("head", "base", "body"),
            "gitlab": ("source_branch", "target_branch", "description"),
            "gitea": ("head", "base", "body"),
        }[self.kind]
        head, base, title = data.get(names[0]), data.get(names[1]), data.get("title")
        text = data.get(names[2], "")
        for key, value in ((names[0], head), (names[1], base), ("title", title)):
            if not isinstance(value, str) or not value:
                return self._missing(record, key)
        if not isinstance(text, str):
            return self._answer(record, {"message": f"{names[2]} must be a string"}, 422)
        if self.kind == "github" and not isinstance(data.get("draft", False), bool):
            return self._answer(record, {"message": "draft must be a boolean"}, 422)
        assert isinstance(head, str)
        assert isinstance(base, str)
        assert isinstance(title, str)
        branches = self.branches(hosted.path)
        for key, branch in ((names[0], head), (names[1], base)):
            if branch not in branches:
                return self._invalid_branch(record, key, branch)
        if branches[head] == branches[base]:
            return self._no_commits(record, head, base)
        existing = [
            p for p in self.pulls(hosted.path)
            if p.head == head and p.base == base and p.state == "open"
        ]  # fmt: skip
        if existing:
            return self._exists(record, hosted, existing[0])
        if self.kind == "github":
            draft = bool(data.get("draft", False))
        elif self.kind == "gitlab":
            draft = bool(GITLAB_DRAFT.match(title))
        else:
            draft = title.lower().startswith(GITEA_WIP)
        pull = self.add_pull(hosted.path, title=title, head=head, base=base, body=text, draft=draft)
        return self._answer(record, self._view(hosted, pull), 201)

    def _missing(self, record: RecordedRequest, key: str) -> web.Response:
        if self.kind == "github":
            return self._answer(
                record,
                {"message": "Validation Failed",
                 "errors": [{"resource": "PullRequest", "field": key, "code": "missing_field"}]},
                422,
            )  # fmt: skip
        if self.kind == "gitlab":
            return self._answer(record, {"error": f"{key} is missing"}, 400)
        return self._answer(record, {"message": f"[{key.capitalize()}]: Required"}, 422)

    def _invalid_branch(self, record: RecordedRequest, key: str, branch: str) -> web.Response:
        if self.kind == "github":
            return self._answer(
                record,
                {"message": "Validation Failed",
                 "errors": [{"resource": "PullRequest", "field": key, "code": "invalid"}]},
                422,
            )  # fmt: skip
        if self.kind == "gitlab":
            return self._answer(
                record, {"message": [f"{key.replace('_', ' ').capitalize()} is invalid"]}, 422
            )
        return self._answer(record, {"message": "The target couldn't be found.", "errors": []}, 404)

    def _no_commits(self, record: RecordedRequest, head: str, base: str) -> web.Response:
        message = f"No commits between {base} and {head}"
        if self.kind == "github":
            return self._answer(
                record,
                {"message": "Validation Failed",
                 "errors": [{"resource": "PullRequest", "code": "custom", "message": message}]},
                422,
            )  # fmt: skip
        return self._answer(record, {"message": [message] if self.kind == "gitlab" else message},
                            422)  # fmt: skip

    def _exists(self, record: RecordedRequest, hosted: _Repo, pull: PullRecord) -> web.Response:
        if self.kind == "github":
            owner = hosted.path.split("/")[0]
            return self._answer(
                record,
                {"message": "Validation Failed",
                 "errors": [{"resource": "PullRequest", "code": "custom",
                             "message": f"A pull request already exists for {owner}:"
                                        f"{pull.head}."}]},
                422,
            )  # fmt: skip
        if self.kind == "gitlab":
            return self._answer(
                record,
                {"message": [f"Another open merge request already exists for this source "
                             f"branch: !{pull.number}"]},
                409,
            )  # fmt: skip
        return self._answer(
            record,
            {"message": f"pull request already exists for these targets [id: {pull.id}, "
                        f"issue_id: {pull.number}, head_branch: {pull.head}, base_branch: "
                        f"{pull.base}]", "url": f"{self.url}/api/swagger"},
            409,
        )  # fmt: skip

    def _view(self, hosted: _Repo, pull: PullRecord) -> dict[str, Any]:
        web_url = f"{self.url}/{hosted.path}"
        if self.kind == "gitlab":
            state = {"open": "opened"}.get(pull.state, pull.state)
            return {
                "id": pull.id,
                "iid": pull.number,
                "project_id": hosted.id,
                "title": pull.title,
                "description": pull.body,
                "state": state,
                "source_branch": pull.head,
                "target_branch": pull.base,
                "draft": pull.draft,
                "work_in_progress": pull.draft,
                "web_url": f"{web_url}/-/merge_requests/{pull.number}",
                "author": {"username": self.owner},
            }
        owner = hosted.path.split("/")[0]
        view: dict[str, Any] = {
            "id": pull.id,
            "number": pull.number,
            "title": pull.title,
            "body": pull.body,
            "state": "closed" if pull.state == "merged" else pull.state,
            "draft": pull.draft,
            "head": {"ref": pull.head, "label": f"{owner}:{pull.head}"},
            "base": {"ref": pull.base, "label": f"{owner}:{pull.base}"},
            "user": {"login": self.owner},
        }
        if self.kind == "github":
            view["html_url"] = f"{web_url}/pull/{pull.number}"
            view["url"] = f"{self.api_url}/repos/{hosted.path}/pulls/{pull.number}"
        else:
            view["html_url"] = f"{web_url}/pulls/{pull.number}"
            view["url"] = view["html_url"]
        return view

    def _error_body(self, status: int) -> Any:
        github = {
            401: "Bad credentials",
            403: "Resource not accessible by personal access token",
            404: "Not Found",
            409: "Conflict",
            422: "Validation Failed",
            429: "You have exceeded a secondary rate limit.",
        }
        if self.kind == "github":
            return {
                "message": github.get(status, "Server Error"),
                "documentation_url": "https://docs.github.com/rest",
            }
        if self.kind == "gitlab":
            texts = {401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Project Not Found",
                     409: "409 Conflict", 422: "422 Unprocessable Entity",
                     429: "Retry later"}  # fmt: skip
            return {"message": texts.get(status, "500 Internal Server Error")}
        texts = {401: "token is required", 403: "user should have a permission to write",
                 404: "The target couldn't be found.", 409: "Conflict",
                 422: "Unprocessable Entity", 429: "rate limit reached"}  # fmt: skip
        return {"message": texts.get(status, "internal server error"), "url": self.url}

    # -- git over HTTP -------------------------------------------------------------------------

    async def _git_http(self, request: web.Request, repo: str, rest: str) -> web.StreamResponse:
        body = await request.read()
        record = self._record(request, "git", body)
        with self._lock:
            hosted = self._state.repos.get(repo)
        if hosted is None:
            record.status = 404
            return web.Response(status=404, text="Repository not found.\n")
        service = request.query.get("service", "")
        pushing = rest.endswith("/git-receive-pack") or service == "git-receive-pack"
        user = None
        if pushing:
            user = self._basic_user(request.headers.get("Authorization", ""))
            if user is None:
                record.status = 401
                return web.Response(
                    status=401,
                    text="Invalid username or token.\n",
                    headers={"WWW-Authenticate": 'Basic realm="scripted git host"'},
                )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PATH_INFO": f"/{repo}.git{rest}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
        }
        if request.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = request.headers["Content-Encoding"]
        if user is not None:
            env["REMOTE_USER"] = user
        proc = await asyncio.create_subprocess_exec(
            "git", "http-backend",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, _ = await proc.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        record.status = status
        return web.Response(status=status, body=payload, headers=headers)

    def _basic_user(self, header: str) -> str | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return (user or "token") if password == self.token else None


def _bearer(header: str) -> str:
    scheme, _, value = header.partition(" ")
    return value if scheme.lower() == "bearer" else ""


@pytest.fixture(params=KINDS)
def scripted_git_host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScriptedGitHost]:
    """A scripted git host of each kind in turn (see the module docstring)."""
    with ScriptedGitHost(request.param, tmp_path / f"host-{request.param}") as host:
        yield host
