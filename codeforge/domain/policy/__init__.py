"""The permission policy: what an agent may do, decided before every tool call.

    modes        Decision, PermissionMode, categories and each mode's defaults
    paths        where a path points; gitignore-style patterns
    shell        a command split into every command it runs
    programs     which files common programs read or write; network clients
    specifiers   Read / Edit / Write / Bash / Network, with patterns
    profile      PolicyProfile, PermissionRule, Restriction; protected paths
    document     policy documents (plain data) into checked profiles; run overrides
    evaluation   EffectivePolicy: layers compiled, decisions made
    layers       which profiles make up a run's policy, in which order

Pure: no I/O. YAML is read by `codeforge.services.policy_documents`.
"""

from codeforge.domain.policy.document import (
    PolicyInvalid,
    PolicyProblem,
    build_profile,
    build_run_override,
)
from codeforge.domain.policy.evaluation import (
    TOOL_KINDS,
    EffectivePolicy,
    PartVerdict,
    PolicyRequest,
    Verdict,
)
from codeforge.domain.policy.layers import ProfileSource, compose
from codeforge.domain.policy.modes import Category, Decision, PermissionMode
from codeforge.domain.policy.profile import (
    DEFAULT_PROTECTED,
    PermissionRule,
    PolicyProfile,
    Restriction,
)
from codeforge.domain.policy.shell import parse_command
from codeforge.domain.policy.specifiers import Kind, SpecifierError, ToolSpecifier

__all__ = [
    "DEFAULT_PROTECTED",
    "TOOL_KINDS",
    "Category",
    "Decision",
    "EffectivePolicy",
    "Kind",
    "PartVerdict",
    "PermissionMode",
    "PermissionRule",
    "PolicyInvalid",
    "PolicyProblem",
    "PolicyProfile",
    "PolicyRequest",
    "ProfileSource",
    "Restriction",
    "SpecifierError",
    "ToolSpecifier",
    "Verdict",
    "build_profile",
    "build_run_override",
    "compose",
    "parse_command",
]
