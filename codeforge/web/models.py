"""Models (with their prices and a health check) and the agents that use them.

The health check button posts to `POST /api/v1/models/{id}/check` from the page's
script and shows the answer (status and latency) beside the model; it is hidden
without the script, and says so when the server has no such endpoint yet.
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
from codeforge.services.models import Models
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
    ) -> Template:
        principal = user.principal
        return pages.render(
            request,
            user,
            "models.html",
            models=await views.every(models.list, principal),
            agents=await views.every(agents.list, principal),
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
    ) -> Redirect:
        agent = await agents.create(
            user.principal,
            name=form.text("name", max_length=63),
            model=form.text("model", max_length=128),
            instructions=form.optional_text("instructions", max_length=20_000),
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
