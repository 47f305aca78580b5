"""Domain errors: what went wrong, in the language of the domain.

    DomainError
    +-- Unauthenticated   no valid credentials were presented
    +-- NotFound          the thing does not exist (or is not visible to this tenant)
    +-- Conflict          a concurrent change or a duplicate won
    +-- ValidationFailed  the input breaks a rule; `field` names where
    +-- Forbidden         the caller may not do this
    +-- PolicyDenied      the permission policy refused an action
    +-- BudgetExceeded    the action would spend past a budget

HTTP status codes are assigned in one place, `codeforge.http.errors`.
"""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Unauthenticated(DomainError):
    pass


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class ValidationFailed(DomainError):
    pass


class Forbidden(DomainError):
    pass


class PolicyDenied(DomainError):
    pass


class BudgetExceeded(DomainError):
    pass
