"""GitLab (gitlab.com and self-managed) merge requests through its REST API v4.

- `GET /projects/{id}/merge_requests?state=opened&target_branch=…&per_page=100&page=N`,
  paged by `X-Next-Page` / `Link`.
- `POST /projects/{id}/merge_requests` with `source_branch`, `target_branch`, `title`,
  `description`, `remove_source_branch`. The create call has no draft attribute: a draft
  is a title starting with `Draft:` (GitLab 13.2 and later; `WIP:` before), and the
  reply's `draft` says whether GitLab took it as one.
- `{id}` is the numeric project id or the URL-encoded path (`group%2Fsub%2Fproject`).
- `PRIVATE-TOKEN: <token>` (personal, project and group access tokens).

The API root is https://gitlab.com/api/v4, or https://<host>/api/v4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.git_host.base import RestGitHost
from adapters.git_host.http import segment
from codeforge.ports.git_host import HostTarget, PullRequest, PullRequestSpec

DRAFT_PREFIXES = ("draft:", "[draft]", "(draft)")


class GitLabHost(RestGitHost):
    kind = "gitlab"
    push_username = "oauth2"
    host = "GitLab"
    title_prefix: ClassVar[str] = "Draft: "

    def headers(self, target: HostTarget) -> dict[str, str]:
        return {"PRIVATE-TOKEN": target.token, "Accept": "application/json"}

    def list_path(self, target: HostTarget) -> str:
        return f"/projects/{segment(target.repository)}/merge_requests"

    def list_params(self, base: str) -> dict[str, str | int]:
        return {"state": "opened", "target_branch": base}

    def create_path(self, target: HostTarget) -> str:
        return self.list_path(target)

    def create_body(self, spec: PullRequestSpec, title: str) -> dict[str, Any]:
        return {
            "source_branch": spec.head,
            "target_branch": spec.base,
            "title": title,
            "description": spec.body,
            "remove_source_branch": True,
        }

    def base_of(self, item: Mapping[str, Any]) -> str | None:
        base = item.get("target_branch")
        return base if isinstance(base, str) else None

    def body_of(self, item: Mapping[str, Any]) -> str | None:
        body = item.get("description")
        return body if isinstance(body, str) else None

    def is_draft_title(self, title: str) -> bool:
        return title.lower().startswith(DRAFT_PREFIXES)

    def read(self, target: HostTarget, item: Mapping[str, Any]) -> PullRequest:
        draft = item.get("draft")
        if not isinstance(draft, bool):  # before GitLab 13.2
            draft = item.get("work_in_progress") is True
        return PullRequest(
            number=self._field(target, item, "iid", int),
            url=self._field(target, item, "web_url", str),
            head=str(item.get("source_branch", "")),
            base=self.base_of(item) or "",
            title=str(item.get("title", "")),
            draft=draft,
            state=str(item.get("state", "opened")),
        )
