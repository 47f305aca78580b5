"""GitHub (github.com and GitHub Enterprise Server) through its REST API.

- `GET /repos/{owner}/{repo}/pulls?state=open&base=…&per_page=100&page=N`, paged by the
  `Link` header.
- `POST /repos/{owner}/{repo}/pulls` with `title`, `head`, `base`, `body`, `draft`,
  `maintainer_can_modify` (the branch is in the same repository).
- `Authorization: Bearer <token>` (classic and fine-grained personal access tokens, app
  installation tokens), `Accept: application/vnd.github+json`,
  `X-GitHub-Api-Version: 2022-11-28`.

The API root is https://api.github.com, or https://<host>/api/v3 for Enterprise Server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.git_host.base import RestGitHost
from adapters.git_host.http import repo_path
from codeforge.ports.git_host import HostTarget, PullRequest, PullRequestSpec

API_VERSION = "2022-11-28"


class GitHubHost(RestGitHost):
    kind = "github"
    push_username = "x-access-token"
    host = "GitHub"

    def headers(self, target: HostTarget) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {target.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }

    def list_path(self, target: HostTarget) -> str:
        return f"/repos/{repo_path(target.repository)}/pulls"

    def list_params(self, base: str) -> dict[str, str | int]:
        return {"state": "open", "base": base}

    def create_path(self, target: HostTarget) -> str:
        return self.list_path(target)

    def create_body(self, spec: PullRequestSpec, title: str) -> dict[str, Any]:
        return {
            "title": title,
            "head": spec.head,
            "base": spec.base,
            "body": spec.body,
            "draft": spec.draft,
            "maintainer_can_modify": True,
        }

    def read(self, target: HostTarget, item: Mapping[str, Any]) -> PullRequest:
        head = item.get("head") if isinstance(item.get("head"), dict) else {}
        return PullRequest(
            number=self._field(target, item, "number", int),
            url=self._field(target, item, "html_url", str),
            head=str(head.get("ref", "")) if isinstance(head, dict) else "",
            base=self.base_of(item) or "",
            title=str(item.get("title", "")),
            draft=item.get("draft") is True,
            state=str(item.get("state", "open")),
        )
