"""Projects: a git repository CodeForge works on, and the rules for working on it."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum

from msgspec import Struct

from codeforge.domain.entity import Entity
from codeforge.domain.errors import ValidationFailed
from codeforge.domain.gates import QualityGates
from codeforge.domain.limits import Limits

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_PASSWORD_IN_URL = re.compile(r"^[a-z+]+://[^/@\s]*:[^/@\s]*@")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")


class SourceKind(StrEnum):
    PATH = "path"
    URL = "url"


class GitHostKind(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    # Gitea and Forgejo share one API.
    GITEA = "gitea"


DEFAULT_API_URLS = {
    GitHostKind.GITHUB: "https://api.github.com",
    GitHostKind.GITLAB: "https://gitlab.com/api/v4",
}
_OWNER_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_GITLAB_PATH = re.compile(r"^(\d+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+)$")
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*@")
_API_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s?#]*)?$")


class GitHostConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where a project's pull requests are opened (delivery mode `pr`)."""

    kind: GitHostKind
    # "owner/name" on GitHub and Gitea; "group/subgroup/project" or the numeric id on GitLab.
    repository: str
    # The NAME of the secret holding the host's token, never the token.
    token_secret: str
    # The REST API root; empty: https://api.github.com or https://gitlab.com/api/v4
    # (Gitea and Forgejo have no default: e.g. https://codeberg.org/api/v1).
    api_url: str = ""
    # Open pull requests as drafts.
    draft: bool = True

    @property
    def api_root(self) -> str:
        return (self.api_url or DEFAULT_API_URLS.get(self.kind, "")).rstrip("/")


def validate_git_host(host: GitHostConfig | None) -> None:
    """A git host configuration that can work, or ValidationFailed saying what to change."""
    if host is None:
        return
    if host.kind is GitHostKind.GITLAB:
        if not _GITLAB_PATH.match(host.repository) or ".." in host.repository:
            raise ValidationFailed(
                "git_host.repository is the project's path (group/project, "
                "group/subgroup/project) or its numeric id",
                field="git_host.repository",
            )
    elif not _OWNER_NAME.match(host.repository) or ".." in host.repository:
        raise ValidationFailed(
            f"git_host.repository is owner/name on {host.kind.value}, e.g. acme/app",
            field="git_host.repository",
        )
    if not host.token_secret:
        raise ValidationFailed(
            "git_host.token_secret names the secret holding the host's token "
            "(set it with `codeforge secrets set NAME` or CODEFORGE_SECRET_NAME)",
            field="git_host.token_secret",
        )
    if not host.api_root:
        raise ValidationFailed(
            f"git_host.api_url is required for {host.kind.value}: the REST API root, "
            "e.g. https://gitea.example.com/api/v1",
            field="git_host.api_url",
        )
    if _USERINFO.match(host.api_root):
        raise ValidationFailed(
            "git_host.api_url must not carry credentials; the token belongs in the secret "
            "named by git_host.token_secret",
            field="git_host.api_url",
        )
    if not _API_URL.match(host.api_root):
        raise ValidationFailed(
            "git_host.api_url must be an http(s) URL without a query or fragment: the "
            "host's REST API root, e.g. https://gitlab.example.com/api/v4",
            field="git_host.api_url",
        )


class Project(Entity, frozen=True, kw_only=True):
    # A slug: it names the workspace folder <data_dir>/workspaces/<name>.
    name: str
    source: str
    source_kind: SourceKind
    default_branch: str = "main"
    # Shell commands that must pass for a run to be done, e.g. ["pytest -q", "ruff check ."].
    quality_gates: list[str] = []
    # Tests, lint, diff size, rollback, retries: see codeforge/domain/gates.py.
    gates: QualityGates = QualityGates()
    policy_profile: str = "default"
    limits: Limits = Limits()
    description: str = ""
    # Total spend cap across every run of the project (never resets); None: no cap.
    budget_usd: Decimal | None = None
    # Where pull requests are opened (deliver: pr); None: no git host.
    git_host: GitHostConfig | None = None


def validate_budget(budget_usd: Decimal | None) -> None:
    if budget_usd is not None and not budget_usd >= 0:
        raise ValidationFailed("budget_usd must be a non-negative amount", field="budget_usd")


def validate_project_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValidationFailed(
            "a project name is 1-63 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit",
            field="name",
        )
    return name


def classify_source(source: str) -> SourceKind:
    """A clone URL or an absolute local path; anything else is refused."""
    if source.startswith("-") or source.startswith("ext::") or "\n" in source or "\0" in source:
        raise ValidationFailed("this git source is not allowed", field="source")
    if source.startswith(_URL_SCHEMES) or _SCP_LIKE.match(source):
        if _PASSWORD_IN_URL.match(source):
            # It would be stored and shown with the project; credentials belong in secrets.
            raise ValidationFailed(
                "the URL carries a password or token; register the repository without it",
                field="source",
            )
        return SourceKind.URL
    if source.startswith("/"):
        return SourceKind.PATH
    raise ValidationFailed(
        "source must be a clone URL (https://, ssh://, git@host:repo) or an absolute path",
        field="source",
    )
