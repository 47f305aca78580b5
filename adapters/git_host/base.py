"""The shape every git host adapter shares: page through open pull requests, open one.

A subclass says how its host spells things: the auth headers, the list and create
paths and parameters, how it marks a draft, and how to read a pull request back.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.git_host.http import HostClient, Reply, has_next_page
from codeforge.ports.git_host import (
    GitHostBadResponse,
    HostTarget,
    PullRequest,
    PullRequestSpec,
)

MAX_PAGES = 100
"""Pages of open pull requests read when looking for one (100 per page: 10,000)."""


class RestGitHost(abc.ABC):
    kind: str
    push_username: str
    host: str
    """The host's name in messages ("GitHub")."""
    page_size: ClassVar[int] = 100
    title_prefix: ClassVar[str] = ""
    """How the host marks a draft in the title (GitLab "Draft: ", Gitea "WIP: ")."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        retry_after_cap: float = 30.0,
        backoff_base: float = 0.5,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self._client = HostClient(
            self.host,
            timeout=timeout,
            max_retries=max_retries,
            retry_after_cap=retry_after_cap,
            backoff_base=backoff_base,
        )
        self._max_pages = max_pages

    # -- the port --------------------------------------------------------------------------

    async def find_pull_request(
        self, target: HostTarget, *, base: str, marker: str
    ) -> PullRequest | None:
        for page in range(1, self._max_pages + 1):
            reply = await self._client.call(
                target,
                "GET",
                self.list_path(target),
                headers=self.headers(target),
                params={**self.list_params(base), **self.page_params(page)},
            )
            items = reply.data
            if not isinstance(items, list):
                raise self._bad(target, "the list of pull requests is not a JSON array")
            for item in items:
                if not isinstance(item, dict):
                    continue
                if self.base_of(item) == base and marker in (self.body_of(item) or ""):
                    return self.read(target, item)
            if not self._more(reply, len(items)):
                return None
        return None

    async def open_pull_request(self, target: HostTarget, spec: PullRequestSpec) -> PullRequest:
        title = spec.title
        if spec.draft and self.title_prefix and not self.is_draft_title(title):
            title = self.title_prefix + title
        reply = await self._client.call(
            target,
            "POST",
            self.create_path(target),
            headers=self.headers(target),
            json=self.create_body(spec, title),
        )
        if not isinstance(reply.data, dict):
            raise self._bad(target, "the new pull request is not a JSON object")
        return self.read(target, reply.data)

    async def close(self) -> None:
        await self._client.close()

    # -- what a host spells its own way ------------------------------------------------------

    @abc.abstractmethod
    def headers(self, target: HostTarget) -> dict[str, str]:
        """The authentication headers the host takes for `target`'s token."""

    @abc.abstractmethod
    def list_path(self, target: HostTarget) -> str:
        """The API path that lists the repository's pull requests."""

    @abc.abstractmethod
    def list_params(self, base: str) -> dict[str, str | int]:
        """Query parameters selecting open pull requests into `base`."""

    def page_params(self, page: int) -> dict[str, str | int]:
        return {"per_page": self.page_size, "page": page}

    @abc.abstractmethod
    def create_path(self, target: HostTarget) -> str:
        """The API path a pull request is opened at."""

    @abc.abstractmethod
    def create_body(self, spec: PullRequestSpec, title: str) -> dict[str, Any]:
        """The JSON body that opens `spec` under `title`."""

    def base_of(self, item: Mapping[str, Any]) -> str | None:
        base = item.get("base")
        return base.get("ref") if isinstance(base, dict) else None

    def body_of(self, item: Mapping[str, Any]) -> str | None:
        body = item.get("body")
        return body if isinstance(body, str) else None

    def is_draft_title(self, title: str) -> bool:
        return bool(self.title_prefix) and title.lower().startswith(
            self.title_prefix.strip().lower()
        )

    @abc.abstractmethod
    def read(self, target: HostTarget, item: Mapping[str, Any]) -> PullRequest:
        """The port's `PullRequest` from one item of the host's reply."""

    # -- helpers -------------------------------------------------------------------------------

    def _more(self, reply: Reply, count: int) -> bool:
        said = has_next_page(reply.headers)
        # A host (or proxy) that drops the paging headers: a full page may have a next one.
        return said if said is not None else count >= self.page_size

    def _bad(self, target: HostTarget, what: str) -> GitHostBadResponse:
        return GitHostBadResponse(
            f"{self.host} at {target.api_url}: {what}; check git_host.api_url (the REST API root)"
        )

    def _field(self, target: HostTarget, item: Mapping[str, Any], name: str, kind: type) -> Any:
        value = item.get(name)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise self._bad(target, f"a pull request has no valid {name!r}")
        return value
