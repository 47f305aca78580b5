"""Models (with their prices and their health) and the agents that use them.

Health is the model-health service's (`codeforge.services.model_health`): the page
shows each model's latest check made by this process — on demand, or the background
check of the config file's models — and a **Check now** form per model makes a real
minimal chat call and says up or down, how fast, and the provider's error. A model
that is down is the check's answer, not a failed form: it is said at the top of the
page like any outcome.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from codeforge.domain.limits import Limits
from codeforge.services.agents import Agents
from codeforge.services.model_health import ModelCheck, ModelHealth
from codeforge.services.models import Models
from codeforge.services.policies import Policies
from codeforge.web import views
from codeforge.web.forms import Form
from codeforge.web.pages import Pages
from codeforge.web.session import PageUser


class ModelPages(Controller):
    @get("/models")
    async def list_models(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        models: NamedDependency[Models],
        agents: NamedDependency[Agents],
        model_health: NamedDependency[ModelHealth],
        policies: NamedDependency[Policies],
    ) -> Template:
        principal = user.principal
        listed = await views.every(models.list, principal)
        return pages.render(
            request,
            user,
            "models.html",
            models=listed,
            health={check.model_id: check for check in model_health.latest(listed)},
            agents=await views.every(agents.list, principal),
            profiles=await views.profile_choices(policies, principal),
        )

    @post("/models")
    async def add_model(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        models: NamedDependency[Models],
    ) -> Redirect:
        model = await models.create(
            user.principal,
            name=form.text("name", max_length=128),
            base_url=form.text("base_url", label="base URL", max_length=2048),
            model=form.optional_text("model", label="provider model id", max_length=256)
            or form.text("name", max_length=128),
            api_key_secret=form.optional_text(
                "api_key_secret", label="secret name", max_length=128
            ),
            input_price_per_mtok=form.decimal("input_price_per_mtok", label="input price"),
            output_price_per_mtok=form.decimal("output_price_per_mtok", label="output price"),
            context_window=form.integer("context_window", label="context window", minimum=1)
            or 128_000,
        )
        return pages.redirect(request, "/models", message=f"Model {model.name} added.")

    @post("/models/{model_id:uuid}/check")
    async def check_model(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        model_health: NamedDependency[ModelHealth],
        model_id: FromPath[uuid.UUID],
    ) -> Redirect:
        check = await model_health.check(user.principal, model_id)
        return pages.redirect(
            request,
            f"/models#model-{model_id}",
            message=said(check),
            level="info" if check.status == "up" else "error",
        )

    @post("/models/{model_id:uuid}/delete")
    async def delete_model(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        models: NamedDependency[Models],
        model_id: FromPath[uuid.UUID],
    ) -> Redirect:
        model = await models.get(user.principal, model_id)
        await models.delete(user.principal, model_id, None)
        return pages.redirect(request, "/models", message=f"Model {model.name} deleted.")

    @post("/agents")
    async def add_agent(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        agents: NamedDependency[Agents],
        policies: NamedDependency[Policies],
    ) -> Redirect:
        agent = await agents.create(
            user.principal,
            name=form.text("name", max_length=63),
            model=form.text("model", max_length=128),
            instructions=form.optional_text("instructions", max_length=20_000),
            policy_profile=await views.chosen_profile(
                policies, user.principal, form.optional_text("policy_profile") or "default"
            ),
            limits=Limits(
                max_steps=form.integer("max_steps", label="max steps", minimum=1),
                max_wall_seconds=form.integer("max_wall_seconds", label="max wall time", minimum=1),
                max_cost_usd=form.decimal("max_cost_usd", label="max cost per run"),
            ),
        )
        return pages.redirect(request, "/models", message=f"Agent {agent.name} added.")

    @post("/agents/{agent_id:uuid}/delete")
    async def delete_agent(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        agents: NamedDependency[Agents],
        agent_id: FromPath[uuid.UUID],
    ) -> Redirect:
        agent = await agents.get(user.principal, agent_id)
        await agents.delete(user.principal, agent_id, None)
        return pages.redirect(request, "/models", message=f"Agent {agent.name} deleted.")


def said(check: ModelCheck) -> str:
    """A check's outcome in a sentence: up or down, how fast, and why."""
    took = f"{check.latency_ms:,.0f} ms" if check.latency_ms is not None else "no time"
    if check.status == "up":
        return f"Model {check.name} is up: answered in {took}" + (
            f" ({check.detail})." if check.detail else "."
        )
    return f"Model {check.name} is DOWN (after {took}): {check.error or check.detail}"
