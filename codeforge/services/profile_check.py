"""`ProfileCheck`: how the catalogues ask whether a `policy_profile` names anything.

Implemented by `EffectivePolicies.check_profile_name`; projects and agents call it when
a profile name is saved, so a typo is a 422 at once rather than a run whose every call
is denied.
"""

from __future__ import annotations

import uuid
from typing import Literal, Protocol


class ProfileCheck(Protocol):
    async def __call__(
        self,
        tenant_id: uuid.UUID,
        name: str,
        *,
        project_id: uuid.UUID | None,
        whose: Literal["project", "agent"],
    ) -> None:
        """Return if `name` resolves; raise `ValidationFailed` on `policy_profile` if not."""
