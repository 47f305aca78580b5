"""Agents: who does the work — a backend, a model and its rules."""

from __future__ import annotations

from enum import StrEnum

from codeforge.domain.entity import Entity
from codeforge.domain.limits import Limits


class Backend(StrEnum):
    NATIVE = "native"
    AIDER = "aider"


class Agent(Entity, frozen=True, kw_only=True):
    name: str
    backend: Backend = Backend.NATIVE
    # The name of a registered model configuration.
    model: str
    policy_profile: str = "default"
    limits: Limits = Limits()
    instructions: str = ""
