"""Git hosts: opening pull requests on GitHub, GitLab and Gitea/Forgejo.

Delivery mode `pr` pushes the run's branch (the `Vcs` port), then asks the project's
git host, through this port, for a pull request (a merge request on GitLab) from that
branch into the project's default branch. Adapters (`adapters/git_host/`) speak each
host's REST API over aiohttp; one contract suite (`tests/contract/test_git_host_contract.py`)
runs against all of them, driven against the scripted git host
(`tests/support/scripted_git_host.py`).

Contract:

- `find_pull_request(target, base=..., marker=...)` pages through every open pull
  request into `base` and returns the first whose body (description) contains `marker`,
  else None. This is how a task that already has an open pull request gets no second
  one: the delivery writes a marker naming the task into every body it opens.
- `open_pull_request(target, spec)` opens one and returns it. `spec.draft` opens it as a
  draft in the host's own way: GitHub's draft state; GitLab's `Draft:` title prefix and
  Gitea's `WIP:` title prefix, which is how those two mark drafts.
- `push_username` is the user name that goes with the token when git pushes over HTTPS
  (`x-access-token` on GitHub, `oauth2` on GitLab and Gitea; the token decides who it is).
- Transient failures (5xx, a lost connection, a timeout, a 429 whose `Retry-After` is
  short) are retried a few times; everything else fails at once with a typed error.
- No message, log line or exception ever holds the token.

Errors (raised `from` the underlying exception):

    PortError
    +-- GitHostError                  any failure; `status`: the HTTP status, if there was one
        +-- GitHostAuthFailed         401, 403: the token is missing, wrong, expired or not allowed
        +-- GitHostNotFound           (NotFound) 404: no such repository (or it is hidden)
        +-- GitHostRejected           (ValidationFailed) 409, 422: the host refused the request as
        |                             sent (a branch is missing, no commits between the branches,
        |                             drafts unsupported, a pull request exists already)
        +-- GitHostRateLimited        429, or GitHub's 403 with no requests left; `retry_after`
        +-- GitHostBadResponse        the reply is not what the host's API documents
        +-- GitHostUnavailable        (DependencyUnavailable) 5xx, unreachable or timed out
                                      after every retry
"""

from __future__ import annotations

from typing import Protocol

from msgspec import Struct

from codeforge.domain.errors import NotFound, ValidationFailed
from codeforge.ports.errors import DependencyUnavailable, PortError

__all__ = [
    "GitHost",
    "GitHostAuthFailed",
    "GitHostBadResponse",
    "GitHostError",
    "GitHostNotFound",
    "GitHostRateLimited",
    "GitHostRejected",
    "GitHostUnavailable",
    "HostTarget",
    "PullRequest",
    "PullRequestSpec",
]


# ---------------------------------------------------------------------------- errors


class GitHostError(PortError):
    """A git host call failed; str() says what and, where it can, how to fix it."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class GitHostAuthFailed(GitHostError):
    """The host refused the token (401), or the token may not do this (403)."""


class GitHostNotFound(GitHostError, NotFound):
    """The repository does not exist, or the token cannot see it (hosts answer 404 for both)."""


class GitHostRejected(GitHostError, ValidationFailed):
    """The host refused the request as sent (409, 422): its reason is in the message."""


class GitHostRateLimited(GitHostError):
    """Too many requests; `retry_after` is the seconds the host asked to wait, if it said."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class GitHostBadResponse(GitHostError):
    """The reply is not what the host's API documents (a proxy's page, a wrong API URL)."""


class GitHostUnavailable(GitHostError, DependencyUnavailable):
    """The host answered 5xx, could not be reached or did not answer in time."""


# ---------------------------------------------------------------------------- values


class HostTarget(Struct, frozen=True, kw_only=True):
    """One repository on one host, and the token to use there."""

    api_url: str
    """The REST API root: https://api.github.com, https://gitlab.example/api/v4,
    https://gitea.example/api/v1."""
    repository: str
    """"owner/name" (GitHub, Gitea), "group/subgroup/project" or a numeric id (GitLab)."""
    token: str
    """The token itself (resolved from the secret store). Never shown by repr()."""

    def __repr__(self) -> str:
        return f"HostTarget(api_url={self.api_url!r}, repository={self.repository!r}, token=***)"


class PullRequestSpec(Struct, frozen=True, kw_only=True):
    """A pull request to open."""

    head: str
    """The branch with the changes (pushed to the same repository)."""
    base: str
    """The branch to merge into."""
    title: str
    body: str
    draft: bool = True


class PullRequest(Struct, frozen=True, kw_only=True):
    """A pull request (GitLab: a merge request) as the host reports it."""

    number: int
    """GitHub's and Gitea's number, GitLab's iid (the `!12` of the page)."""
    url: str
    """Its web page."""
    head: str
    base: str
    title: str
    draft: bool = False
    state: str = "open"
    """As the host says it: "open" (GitHub, Gitea) or "opened" (GitLab), ..."""


# ------------------------------------------------------------------------------ port


class GitHost(Protocol):
    """One kind of git host (its REST API); stateless apart from its HTTP connections."""

    kind: str
    """"github", "gitlab" or "gitea" (Gitea and Forgejo share one API)."""
    push_username: str
    """The user name that goes with the token for a git push over HTTPS."""

    async def find_pull_request(
        self, target: HostTarget, *, base: str, marker: str
    ) -> PullRequest | None:
        """The first open pull request into `base` whose body contains `marker`, or None.
        Every page of open pull requests is read (up to an adapter's page cap)."""
        ...

    async def open_pull_request(self, target: HostTarget, spec: PullRequestSpec) -> PullRequest:
        """Open a pull request from `spec.head` into `spec.base`. See the module docstring."""
        ...

    async def close(self) -> None:
        """Release HTTP connections. Idempotent."""
        ...
