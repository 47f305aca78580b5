"""CodeForge's own OpenAI-compatible endpoint, for backends that call a model themselves.

A backend that runs inside the sandbox (Aider) or any tool a run starts gets a
per-run token and a base URL (`/llm/v1`). Each call through the proxy is a model call
of that run like the native loop's: the run must still be going, the cost is reserved
against the run's, project's and tenant's budgets before the call and settled after
it, and the call is recorded as `ModelResponded` in the run's log. The caller names
any model it likes; the proxy always serves the run's own model (the agent's).

Tokens are `cfr_<run id>.<signature>`: an HMAC of the run id with the install's
signing key (from the secret store), so any CodeForge process can check one without a
lookup, and a token stops working the moment its run ends.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import structlog

from codeforge.agent.conversation import calls_as_dicts
from codeforge.agent.models import endpoint_for, find_model
from codeforge.agent.spending import Hold, Spending, budgets_for
from codeforge.domain.errors import Conflict, NotFound, Unauthenticated
from codeforge.domain.events import ModelResponded
from codeforge.domain.model_configs import ModelConfig
from codeforge.domain.runs import Run
from codeforge.ports.costs import CostLedger
from codeforge.ports.events import EventStore
from codeforge.ports.llm import (
    ChatRequest,
    ChatResponse,
    DeltaCallback,
    LanguageModel,
    ModelEndpoint,
)
from codeforge.ports.stores import AgentStore, ModelConfigStore, ProjectStore, TenantStore
from codeforge.services.event_log import EventLog
from codeforge.services.run_journal import RunJournal
from codeforge.services.secrets import Secrets
from codeforge.settings import LlmSettings

log = structlog.get_logger("codeforge.llm_proxy")

TOKEN_PREFIX = "cfr_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class ProxyCall:
    """A checked call: the run it belongs to and the endpoint that serves it."""

    run: Run
    model: ModelConfig
    endpoint: ModelEndpoint
    spending: Spending


class LlmProxy:
    def __init__(
        self,
        *,
        llm: LanguageModel,
        events: EventStore,
        event_log: EventLog,
        agents: AgentStore,
        projects: ProjectStore,
        tenants: TenantStore,
        models: ModelConfigStore,
        ledger: CostLedger,
        secrets: Secrets,
        signing_key: Callable[[], bytes],
        settings: LlmSettings,
        max_output_tokens: int = 4096,
    ) -> None:
        self._llm = llm
        self._events = events
        self._log = event_log
        self._agents = agents
        self._projects = projects
        self._tenants = tenants
        self._models = models
        self._ledger = ledger
        self._secrets = secrets
        self._key = signing_key
        self._settings = settings
        self._max_output = max_output_tokens

    # -- tokens -------------------------------------------------------------------------

    def token_for(self, run: Run) -> str:
        payload = f"{run.tenant_id.hex}{run.id.hex}"
        return f"{TOKEN_PREFIX}{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key(), f"llm-proxy:{payload}".encode(), hashlib.sha256).hexdigest()

    def _verify(self, token: str) -> tuple[uuid.UUID, uuid.UUID]:
        if not token.startswith(TOKEN_PREFIX) or "." not in token:
            raise Unauthenticated("not a CodeForge run token")
        payload, _, signature = token[len(TOKEN_PREFIX) :].partition(".")
        if len(payload) != 64 or not hmac.compare_digest(signature, self._sign(payload)):
            raise Unauthenticated("the run token is not valid")
        return uuid.UUID(payload[:32]), uuid.UUID(payload[32:])

    # -- calls ----------------------------------------------------------------------------

    async def open_call(self, token: str) -> ProxyCall:
        """Check the token and the run; what a call needs. Raises before any spending."""
        tenant_id, run_id = self._verify(token)
        try:
            run = await self._events.get_run(tenant_id, run_id)
        except NotFound:
            raise Unauthenticated("the run token names no run") from None
        if run.status.terminal:
            raise Conflict(f"the run has ended ({run.status.value}); its token no longer works")
        agent = await self._agents.get(tenant_id, run.agent_id)
        model = await find_model(self._models, tenant_id, agent.model)
        project = await self._projects.get(tenant_id, run.project_id)
        spending = Spending(
            self._ledger,
            model,
            tenant_id=tenant_id,
            project_id=run.project_id,
            run_id=run.id,
            budgets=await budgets_for(run, project, self._tenants),
            allow_unpriced=self._settings.allow_unpriced_models
            or run.policy_overrides.get("allow_unpriced_model") is True,
            max_output_tokens=self._max_output,
        )
        spending.check_model()
        endpoint = endpoint_for(model, self._secrets, self._settings)
        return ProxyCall(run=run, model=model, endpoint=endpoint, spending=spending)

    async def hold(self, call: ProxyCall, prompt_tokens: int) -> Hold:
        """Reserve what the call may cost (BudgetExceeded when a budget cannot cover it)."""
        return await call.spending.reserve(prompt_tokens)

    async def forward(
        self,
        call: ProxyCall,
        hold: Hold,
        request: ChatRequest,
        on_delta: DeltaCallback | None = None,
    ) -> ChatResponse:
        """Make the held call, settle its cost and record it; the hold is released on failure."""
        max_tokens = min(request.max_tokens or hold.max_tokens, hold.max_tokens)
        forwarded = ChatRequest(
            endpoint=call.endpoint,
            messages=request.messages,
            tools=request.tools,
            max_tokens=max_tokens,
            temperature=request.temperature,
            tool_choice=request.tool_choice,
        )
        try:
            response = await self._llm.chat(forwarded, on_delta=on_delta)
        except BaseException:
            await call.spending.release(hold)
            raise
        cost = await call.spending.settle(hold, response.usage)
        await self._record(call, response, cost)
        return response

    async def _record(self, call: ProxyCall, response: ChatResponse, cost: Decimal | None) -> None:
        journal = RunJournal(self._log, self._events, call.run, owner=None)
        run = await journal.refresh()
        event = ModelResponded(
            step=run.steps + 1,
            model=call.model.name,
            content=response.message.content or "",
            tool_calls=calls_as_dicts(response.message.tool_calls),
            finish_reason=response.finish_reason,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            usage_reported=response.usage.reported,
            cost_usd=cost,
            latency_s=round(response.latency, 4),
            attempts=response.attempts,
        )
        try:
            await journal.append(event)
        except Conflict:
            # The run ended while the call was made: it is paid for (the ledger has it),
            # but the log is closed.
            log.warning("a proxied call finished after its run ended", run_id=str(run.id))
