"""Route decorators of API v1: Litestar's, with every error response documented.

Any operation may answer with the guards' or the error mapper's problems, so each
one's OpenAPI entry lists them (schemathesis checks responses against it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import litestar
from litestar.openapi.datastructures import ResponseSpec

from codeforge.http.api.schemas import Problem
from codeforge.http.errors import PROBLEM_JSON


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        description=description,
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )


# Documented on every operation: the guards and the error mapper may answer any of them.
PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    400: _problem("Malformed request: bad JSON, an unknown field or a wrong type (named)"),
    401: _problem("No valid API key or session"),
    403: _problem("The key's role may not do this, or the CSRF token is missing"),
    404: _problem("Not found in the caller's tenant"),
    409: _problem("A stale version, a duplicate, or a repository state that forbids it"),
    413: _problem("The request body is too large"),
    422: _problem("A rule is broken (the field is named), or an Idempotency-Key was reused"),
    429: _problem("Rate limited: see Retry-After"),
    503: _problem("A dependency (database, queue, engine) is out of reach: retry later"),
}


def _documenting_problems(decorator: Callable[..., Any]) -> Callable[..., Any]:
    def route(*args: Any, responses: dict[int, ResponseSpec] | None = None, **kwargs: Any) -> Any:
        return decorator(*args, responses={**PROBLEM_RESPONSES, **(responses or {})}, **kwargs)

    return route


get = _documenting_problems(litestar.get)
post = _documenting_problems(litestar.post)
patch = _documenting_problems(litestar.patch)
delete = _documenting_problems(litestar.delete)
