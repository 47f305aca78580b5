"""Every error becomes an `application/problem+json` response here, and only here.

Controllers never catch: domain errors, validation errors and anything
unexpected are mapped once. An unexpected error is logged with its traceback
and answered with a 500 that carries the request id — never the traceback.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from codeforge.domain.errors import (
    BudgetExceeded,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    PolicyDenied,
    Unauthenticated,
    ValidationFailed,
)
from codeforge.ports.errors import DependencyUnavailable

PROBLEM_JSON = "application/problem+json"

log = structlog.get_logger("codeforge.http")

STATUS_OF: dict[type[DomainError], int] = {
    Unauthenticated: 401,
    NotFound: 404,
    Conflict: 409,
    ValidationFailed: 422,
    Forbidden: 403,
    PolicyDenied: 403,
    BudgetExceeded: 402,
}

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request.scope.get("state", {}).get("request_id"),
    }
    body.update(extra or {})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    status = next((s for t, s in STATUS_OF.items() if isinstance(exc, t)), 400)
    extra = {"errors": [{"field": exc.field, "message": exc.message}]} if exc.field else None
    return problem(request, status, exc.message, extra=extra)


def validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    # Name the fields in the detail too: it is what a person reads first.
    named = [
        f"{e.get('key')}: {e.get('message')}" if e.get("key") else str(e.get("message"))
        for e in errors
        if isinstance(e, dict)
    ]
    detail = f"{exc.detail}: {'; '.join(named)}" if named else exc.detail
    return problem(request, 400, detail, extra={"errors": errors} if errors else None)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    detail = exc.detail
    if exc.status_code == 404 and detail == TITLES[404]:
        # The router's bare "Not Found": no route matched. Most often an id
        # that is not a UUID (`/runs/{run_id:uuid}` does not match `/runs/42`).
        detail = (
            f"No endpoint matches {request.method} {request.url.path}: check the path "
            "(ids are UUIDs such as 3f2b8c1e-5d4a-4e6b-9c7d-2a1b0c9d8e7f); "
            "GET /schema/openapi.json lists every endpoint."
        )
    return problem(request, exc.status_code, detail, headers=exc.headers)


def dependency_unavailable(
    request: Request[Any, Any, Any], exc: DependencyUnavailable
) -> Response[dict[str, Any]]:
    log.warning("dependency unavailable", path=request.url.path, error=str(exc))
    return problem(request, 503, str(exc), headers={"retry-after": "5"})


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return problem(request, 500, "An unexpected error occurred; quote the request id to report it.")


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    DependencyUnavailable: dependency_unavailable,
    Exception: unexpected_error,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "problem"]
