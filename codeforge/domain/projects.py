"""Projects: a git repository CodeForge works on, and the rules for working on it."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum

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
