"""Stored policies: named profiles and global policies, versioned like every entity.

    scope global    applies to every run of the tenant, layered over each run's profile
    scope project   a profile a project (or an agent) chooses by name: bound to one
                    project (`project_id`), or tenant-wide when `project_id` is None

The document is kept as written (comments and order too), so what a person saved is
what they read back; it is checked whenever it is saved.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum

from codeforge.domain.entity import Entity
from codeforge.domain.errors import ValidationFailed

__all__ = ["RESERVED_NAMES", "Policy", "PolicyScope", "validate_policy_name"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# "default" means the server's default profile wherever a profile is named.
RESERVED_NAMES = frozenset({"default"})


class PolicyScope(StrEnum):
    GLOBAL = "global"
    PROJECT = "project"


class Policy(Entity, frozen=True, kw_only=True):
    name: str
    scope: PolicyScope = PolicyScope.PROJECT
    # For project scope: the one project that may use it; None: every project.
    project_id: uuid.UUID | None = None
    # The YAML document as written.
    document: str
    # From the document, for listings.
    description: str = ""
    mode: str = "default"
    # The preset it was saved from ("" if written from scratch).
    based_on: str = ""

    def check_place(self) -> None:
        """A global policy belongs to the whole tenant, never to one project."""
        if self.scope is PolicyScope.GLOBAL and self.project_id is not None:
            raise ValidationFailed(
                "a global policy applies to every project; leave project_id empty",
                field="project_id",
            )


def validate_policy_name(name: str, presets: frozenset[str] | set[str] = frozenset()) -> str:
    if not _NAME.match(name):
        raise ValidationFailed(
            "a policy name is 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a "
            "letter or digit",
            field="name",
        )
    if name in RESERVED_NAMES or name in presets:
        raise ValidationFailed(
            f"{name!r} names a built-in profile; choose another name", field="name"
        )
    return name
