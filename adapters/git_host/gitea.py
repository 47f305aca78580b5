"""Gitea and Forgejo (they share one API) pull requests through the REST API v1.

- `GET /repos/{owner}/{repo}/pulls?state=open&limit=50&page=N`, paged by `Link`; the
  list has no base-branch filter, so the base is compared here.
- `POST /repos/{owner}/{repo}/pulls` with `head`, `base`, `title`, `body`. The create
  call has no draft attribute: a draft ("work in progress") is a title starting with one
  of the instance's `WORK_IN_PROGRESS_PREFIXES`, `WIP:` by default.
- `Authorization: token <token>` (an access token with the repository scope).

`limit` is capped by the instance's `MAX_RESPONSE_ITEMS` (50 by default), so pages of
50 are asked for. The API root is https://<host>/api/v1 (Codeberg: https://codeberg.org/api/v1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.git_host.base import RestGitHost
from adapters.git_host.http import repo_path
from codeforge.ports.git_host import HostTarget, PullRequest, PullRequestSpec

WIP_PREFIXES = ("wip:", "[wip]")


class GiteaHost(RestGitHost):
    kind = "gitea"
    push_username = "oauth2"
    host = "Gitea"
    page_size: ClassVar[int] = 50
    title_prefix: ClassVar[str] = "WIP: "

    def headers(self, target: HostTarget) -> dict[str, str]:
        return {"Authorization": f"token {target.token}", "Accept": "application/json"}

    def list_path(self, target: HostTarget) -> str:
        return f"/repos/{repo_path(target.repository)}/pulls"

    def list_params(self, base: str) -> dict[str, str | int]:
        return {"state": "open"}

    def page_params(self, page: int) -> dict[str, str | int]:
        return {"limit": self.page_size, "page": page}

    def create_path(self, target: HostTarget) -> str:
        return self.list_path(target)

    def create_body(self, spec: PullRequestSpec, title: str) -> dict[str, Any]:
        return {"head": spec.head, "base": spec.base, "title": title, "body": spec.body}

    def is_draft_title(self, title: str) -> bool:
        return title.lower().startswith(WIP_PREFIXES)

    def read(self, target: HostTarget, item: Mapping[str, Any]) -> PullRequest:
        head = item.get("head")
        title = str(item.get("title", ""))
        draft = item.get("draft")  # Gitea 1.22 and later say it; before, the title does
        return PullRequest(
            number=self._field(target, item, "number", int),
            url=self._field(target, item, "html_url", str),
            head=str(head.get("ref", "")) if isinstance(head, dict) else "",
            base=self.base_of(item) or "",
            title=title,
            draft=draft if isinstance(draft, bool) else self.is_draft_title(title),
            state=str(item.get("state", "open")),
        )
