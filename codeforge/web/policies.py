"""Policies: the stored profiles and global policies, the presets, and previews.

The page lists the tenant's global policies and profiles (scope, mode, version, who
names them) and the presets; a profile opens to its YAML in an editor; a preset opens
to its YAML and "save as a new profile"; the preview answers what the gate would
decide on one tool call for a project, with the rule, the scope and why, and for a
command each part's verdict. Everything goes through `codeforge.services.policies`,
so the rules are the API's: every role reads and previews, members write profiles,
only admins write global policies.

A document that does not load comes back in its editor, not through a redirect: a
policy is kilobytes of YAML, more than the cookie that carries a form's values across
a redirect can hold, and what was typed must never be lost. The parser's problems
(`document:5: rules.deny[1]: …`) are shown at their lines.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from msgspec import Struct

from codeforge.domain.errors import DomainError
from codeforge.domain.policy import TOOL_KINDS
from codeforge.domain.policy.stored import Policy, PolicyScope
from codeforge.domain.runs import SandboxMode
from codeforge.services.agents import Agents
from codeforge.services.policies import Policies, PolicyPreview, PreviewCall
from codeforge.services.policy_documents import PolicyDocumentError
from codeforge.services.projects import Projects
from codeforge.web import views
from codeforge.web.errors import form_error
from codeforge.web.forms import Form
from codeforge.web.pages import Pages
from codeforge.web.session import PageUser

STARTER = """\
# What this profile is for, in a sentence or two (see docs/policy.md).
description: Edits accepted; tests run; every other command needs a yes.
mode: acceptEdits            # default | acceptEdits | plan | delegate
rules:
  deny:
    - Bash(git push:*)
  ask: []
  allow:
    - Bash(pytest:*)
"""
_AT_LINE = re.compile(r"^[^:\n]*:(\d+): (.*)$", re.S)


class DocumentProblems(Struct, frozen=True, kw_only=True):
    """The parser's problems with a document, placed at their lines."""

    by_line: dict[int, list[str]] = {}
    # Problems of the whole document (too long, a NUL character).
    general: list[str] = []

    @classmethod
    def of(cls, error: DomainError) -> DocumentProblems:
        lines = error.lines if isinstance(error, PolicyDocumentError) else []
        by_line: dict[int, list[str]] = {}
        general: list[str] = []
        for line in lines:
            found = _AT_LINE.match(line)
            if found:
                by_line.setdefault(int(found.group(1)), []).append(found.group(2))
            else:
                general.append(line.split(": ", 1)[-1])
        return cls(by_line=by_line, general=general)

    @property
    def count(self) -> int:
        return len(self.general) + sum(len(v) for v in self.by_line.values())


class PolicyRow(Struct, frozen=True, kw_only=True):
    policy: Policy
    # "every run", "every project", "project calc".
    place: str
    used_by: list[str]


class PreviewAnswer(Struct, frozen=True, kw_only=True):
    """What the preview form asked (to show it again) and the gate's answer."""

    asked: dict[str, str]
    result: PolicyPreview | None = None


class PolicyPages(Controller):
    path = "/policies"

    @get("/")
    async def list_policies(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        policies: NamedDependency[Policies],
        projects: NamedDependency[Projects],
        agents: NamedDependency[Agents],
        cursor: FromQuery[uuid.UUID | None] = None,
    ) -> Template:
        return pages.render(
            request,
            user,
            "policies/list.html",
            **await _listing(user, policies, projects, agents, cursor),
        )

    @post("/")
    async def create(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        policies: NamedDependency[Policies],
        projects: NamedDependency[Projects],
        agents: NamedDependency[Agents],
    ) -> Template | Redirect:
        document = _document(form)
        try:
            policy = await policies.create(
                user.principal,
                name=form.text("name", max_length=63),
                document=document,
                scope=form.choice("scope", PolicyScope),
                project_id=_optional_uuid(form, "project_id"),
            )
        except DomainError as e:
            # The listing again, the new profile's form filled in as typed.
            status, message = form_error(e, form.strings() | {"document": document})
            return pages.render(
                request,
                user,
                "policies/list.html",
                http_status=status,
                flash=message,
                **await _listing(user, policies, projects, agents, None)
                | {"problems": DocumentProblems.of(e)},
            )
        return pages.redirect(
            request,
            f"/policies/{policy.id}",
            message=f"{_kind(policy)} {policy.name} created.{_how_to_use(policy)}",
        )

    @post("/from-preset")
    async def from_preset(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        policies: NamedDependency[Policies],
    ) -> Redirect:
        preset = form.text("preset", max_length=63)
        policy = await policies.from_preset(
            user.principal,
            preset=preset,
            name=form.text("name", max_length=63),
            scope=form.optional_choice("scope", PolicyScope) or PolicyScope.PROJECT,
            project_id=_optional_uuid(form, "project_id"),
        )
        return pages.redirect(
            request,
            f"/policies/{policy.id}",
            message=f"Preset {preset} saved as {_kind(policy).lower()} {policy.name}: "
            f"edit it below.{_how_to_use(policy)}",
        )

    @get("/presets/{name:str}")
    async def preset(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        policies: NamedDependency[Policies],
        projects: NamedDependency[Projects],
        name: FromPath[str],
    ) -> Template:
        return pages.render(
            request,
            user,
            "policies/preset.html",
            preset=policies.preset(name),
            projects=await views.every(projects.list, user.principal),
            scopes=_scopes(user),
        )

    @get("/preview")
    async def preview(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        policies: NamedDependency[Policies],
        projects: NamedDependency[Projects],
        agents: NamedDependency[Agents],
    ) -> Template:
        # A GET form: a preview changes nothing, so viewers may ask too, and the
        # question is a link to share.
        asked = Form(request.query_params)
        answer = PreviewAnswer(asked=asked.strings())
        status, message = 200, None
        if asked.raw("tool"):
            try:
                result = await policies.preview(user.principal, _preview_call(asked))
            except DomainError as e:
                # Why the gate cannot answer is the preview's answer: said on the form.
                status, message = form_error(e, answer.asked)
            else:
                answer = PreviewAnswer(asked=answer.asked, result=result)
        principal = user.principal
        return pages.render(
            request,
            user,
            "policies/preview.html",
            http_status=status,
            flash=message,
            answer=answer,
            projects=await views.every(projects.list, principal),
            agents=await views.every(agents.list, principal),
            tools=[(tool, tool) for tool in sorted(TOOL_KINDS)],
            sandboxes=list(SandboxMode),
        )

    @get("/{policy_id:uuid}")
    async def detail(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        policies: NamedDependency[Policies],
        projects: NamedDependency[Projects],
        agents: NamedDependency[Agents],
        policy_id: FromPath[uuid.UUID],
    ) -> Template:
        policy = await policies.get(user.principal, policy_id)
        return pages.render(
            request,
            user,
            "policies/detail.html",
            **await _one(user, policy, projects, agents),
        )

    @post("/{policy_id:uuid}")
    async def save(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        policies: NamedDependency[Policies],
        projects: NamedDependency[Projects],
        agents: NamedDependency[Agents],
        policy_id: FromPath[uuid.UUID],
    ) -> Template | Redirect:
        document = _document(form)
        try:
            policy = await policies.update(
                user.principal,
                policy_id,
                form.version(),
                {"name": form.text("name", max_length=63), "document": document},
            )
        except DomainError as e:
            # The editor again, with what was typed and each problem at its line.
            status, message = form_error(e, form.strings() | {"document": document})
            current = await policies.get(user.principal, policy_id)
            return pages.render(
                request,
                user,
                "policies/detail.html",
                http_status=status,
                flash=message,
                **await _one(user, current, projects, agents)
                | {
                    "problems": DocumentProblems.of(e),
                    # Saved by someone meanwhile: both texts are shown, and the form
                    # now carries their version, so saving again replaces it knowingly.
                    "stale": message.field == "version",
                },
            )
        return pages.redirect(
            request,
            f"/policies/{policy.id}",
            message=f"{_kind(policy)} {policy.name} saved (version {policy.version}).",
        )

    @post("/{policy_id:uuid}/delete")
    async def delete(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        policies: NamedDependency[Policies],
        projects: NamedDependency[Projects],
        agents: NamedDependency[Agents],
        policy_id: FromPath[uuid.UUID],
    ) -> Redirect:
        principal = user.principal
        policy = await policies.get(principal, policy_id)
        await policies.delete(principal, policy_id, form.version())
        users = views.used_by(
            policy,
            await views.every(projects.list, principal),
            await views.every(agents.list, principal),
        )
        warning = (
            f" Still named by {', '.join(users)}: their runs deny every call until they "
            "name another profile."
            if users
            else ""
        )
        return pages.redirect(
            request, "/policies", message=f"{_kind(policy)} {policy.name} deleted.{warning}"
        )


async def _listing(
    user: PageUser,
    policies: Policies,
    projects: Projects,
    agents: Agents,
    cursor: uuid.UUID | None,
) -> dict[str, Any]:
    principal = user.principal
    page = await policies.list(principal, limit=views.PAGE, after=cursor, filters={})
    every_project = await views.every(projects.list, principal)
    every_agent = await views.every(agents.list, principal)
    names = {p.id: p.name for p in every_project}
    rows = [
        PolicyRow(
            policy=policy,
            place=_place(policy, names),
            used_by=views.used_by(policy, every_project, every_agent),
        )
        for policy in page.items
    ]
    return {
        "globals": [r for r in rows if r.policy.scope is PolicyScope.GLOBAL],
        "profiles": [r for r in rows if r.policy.scope is PolicyScope.PROJECT],
        "next_cursor": page.next_cursor,
        "presets": policies.presets(),
        "projects": every_project,
        "scopes": _scopes(user),
        "starter": STARTER,
        "problems": DocumentProblems(),
    }


async def _one(
    user: PageUser, policy: Policy, projects: Projects, agents: Agents
) -> dict[str, Any]:
    principal = user.principal
    every_project = await views.every(projects.list, principal)
    names = {p.id: p.name for p in every_project}
    may_write = user.is_admin if policy.scope is PolicyScope.GLOBAL else user.can_mutate
    return {
        "policy": policy,
        "place": _place(policy, names),
        "used_by": views.used_by(policy, every_project, await views.every(agents.list, principal)),
        "may_write": may_write,
        "problems": DocumentProblems(),
        "stale": False,
    }


def _preview_call(asked: Form) -> PreviewCall:
    tool = asked.text("tool")
    command = asked.raw("command") if tool == "bash" else None
    path = asked.optional_text("path", max_length=4096) if tool != "bash" else None
    return PreviewCall(
        tool=tool,
        command=command,
        path=path or None,
        project_id=asked.uuid("project_id", label="project"),
        agent_id=_optional_uuid(asked, "agent_id"),
        sandbox=asked.optional_choice("sandbox", SandboxMode),
    )


def _document(form: Form) -> str:
    """The document as typed (the parser checks it, its size included); browsers send
    a textarea's line breaks as CRLF."""
    return form.raw("document").replace("\r\n", "\n")


def _optional_uuid(form: Form, name: str) -> uuid.UUID | None:
    return form.uuid(name, label=name.removesuffix("_id")) if form.raw(name).strip() else None


def _place(policy: Policy, project_names: dict[uuid.UUID, str]) -> str:
    if policy.scope is PolicyScope.GLOBAL:
        return "every run of the tenant"
    if policy.project_id is None:
        return "every project"
    return f"project {project_names.get(policy.project_id, '(deleted)')}"


def _kind(policy: Policy) -> str:
    return "Global policy" if policy.scope is PolicyScope.GLOBAL else "Profile"


def _how_to_use(policy: Policy) -> str:
    if policy.scope is PolicyScope.GLOBAL:
        return " It applies to every run from now on."
    return " Choose it on a project's page (or an agent's) to use it."


def _scopes(user: PageUser) -> list[tuple[str, str]]:
    """What a new policy may be: members write profiles, admins global policies too."""
    choices = [(PolicyScope.PROJECT.value, "a profile (projects and agents choose it by name)")]
    if user.is_admin:
        choices.append((PolicyScope.GLOBAL.value, "a global policy (applies to every run)"))
    return choices
