"""The agent runtime's pure parts: stall detection, the conversation and its rebuild,
globs, cost holds near a budget's end, and the file-tree context."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.memory.costs import MemoryCostLedger
from codeforge.agent.conversation import Conversation, elided
from codeforge.agent.deltas import DeltaPublisher
from codeforge.agent.file_tree import FileTreeContext
from codeforge.agent.spending import MIN_OUTPUT_TOKENS, Spending
from codeforge.agent.stall import StallDetector, StepRecord
from codeforge.agent.tools.search import glob_regex
from codeforge.domain.errors import BudgetExceeded
from codeforge.domain.events import (
    AgentNudged,
    ContextCompacted,
    ModelResponded,
    PromptAssembled,
    ToolCallCompleted,
)
from codeforge.domain.ids import new_id
from codeforge.domain.model_configs import ModelConfig
from codeforge.ports.costs import Budgets
from codeforge.ports.events import MAX_DELTA_CHARS
from codeforge.ports.llm import ToolCall, Usage

NOW = __import__("datetime").datetime.now(__import__("datetime").UTC)


# -- stall detection --------------------------------------------------------------------


def test_repeated_calls_without_changes_earn_one_nudge_then_a_stop() -> None:
    stall = StallDetector(window=2)
    same = StepRecord(changed_workspace=False, calls=["read_file({'path': 'a'})"])
    assert stall.observe(same) == "ok"  # the first time it is news
    assert stall.observe(same) == "ok"
    assert stall.observe(same) == "nudge"
    assert stall.observe(same) == "ok"
    assert stall.observe(same) == "stalled"


def test_a_change_to_the_workspace_resets_the_count() -> None:
    stall = StallDetector(window=2)
    idle = StepRecord(changed_workspace=False, calls=[], all_failed=False)
    assert stall.observe(idle) == "ok"
    assert stall.observe(idle) == "nudge"
    assert stall.observe(StepRecord(changed_workspace=True, calls=["edit(x)"])) == "ok"
    assert stall.observe(idle) == "ok"
    assert stall.observe(idle) == "nudge"  # a new stall earns a new correction


def test_exploring_new_files_is_progress_but_failing_calls_are_not() -> None:
    stall = StallDetector(window=2)
    for n in range(10):
        assert stall.observe(StepRecord(changed_workspace=False, calls=[f"read({n})"])) == "ok"
    failing = [
        StepRecord(changed_workspace=False, calls=[f"bash({n})"], all_failed=True) for n in range(4)
    ]
    assert [stall.observe(s) for s in failing] == ["ok", "nudge", "ok", "stalled"]


# -- the conversation -----------------------------------------------------------------


C1 = {"id": "c1", "name": "read_file", "arguments": '{"path": "a.py"}'}
C2 = {"id": "c2", "name": "bash", "arguments": '{"command": "ls"}'}


def test_the_conversation_is_rebuilt_from_the_log_exactly() -> None:
    live = Conversation("system text", "the task")
    call = ToolCall(id="c1", name="read_file", arguments='{"path": "a.py"}')
    live.add_assistant("looking", [call])
    live.add_tool_result("c1", "read_file", "x" * 500)
    live.add_user("keep going")
    live.add_assistant("", [ToolCall(id="c2", name="bash", arguments='{"command": "ls"}')])
    live.add_tool_result("c2", "bash", "exit code 0")
    live.elide(["c1"])
    events = [
        PromptAssembled(model="m", system="system text", user="the task"),
        ModelResponded(step=1, model="m", content="looking", tool_calls=[C1]),
        ToolCallCompleted(call_id="c1", tool="read_file", ok=True, output="x" * 500),
        AgentNudged(reason="no_tool_call", message="keep going"),
        ModelResponded(step=2, model="m", tool_calls=[C2]),
        ToolCallCompleted(call_id="c2", tool="bash", ok=True, output="exit code 0"),
        ContextCompacted(elided_calls=["c1"]),
    ]  # fmt: skip
    assert Conversation.from_events(events).messages == live.messages
    assert live.messages[3].content == elided("read_file", 500)


def test_compaction_keeps_the_task_the_assistant_and_recent_results() -> None:
    conversation = Conversation("sys", "task")
    for n in range(10):
        conversation.add_assistant(f"step {n}", [ToolCall(id=f"c{n}", name="grep", arguments="{}")])
        conversation.add_tool_result(f"c{n}", "grep", f"result {n} " + "y" * 1000)
    before = conversation.estimated_tokens()
    ids = conversation.compactable(keep_recent=3)
    assert ids == [f"c{n}" for n in range(7)]
    conversation.elide(ids)
    assert conversation.estimated_tokens() < before / 2
    texts = [m.content or "" for m in conversation.messages]
    assert texts[:2] == ["sys", "task"]
    assert all(f"step {n}" in texts for n in range(10))
    assert texts[-1].startswith("result 9")
    assert conversation.compactable(keep_recent=3) == []


def test_rebuilding_needs_the_prompt() -> None:
    with pytest.raises(ValueError, match="PromptAssembled"):
        Conversation.from_events([AgentNudged(reason="x", message="y")])


# -- globs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/*.py", "a.py", True),
        ("**/*.py", "src/deep/a.py", True),
        ("*.py", "src/a.py", False),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/x/a.py", False),
        ("src/**", "src/x/a.py", True),
        ("test_?.go", "test_a.go", True),
        ("a.[ch]", "a.[ch]", True),
        ("a.[ch]", "a.c", False),
    ],
)
def test_globs_cross_folders_only_with_double_stars(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


@given(st.text(alphabet="ab/.*?[]()+$^\\{}|", max_size=12), st.text(max_size=20))
def test_any_glob_compiles_and_never_raises(pattern: str, path: str) -> None:
    glob_regex(pattern).match(path)


# -- spending near a budget's end ----------------------------------------------------------


def priced(input_price: str | None = "2", output_price: str | None = "10") -> ModelConfig:
    return ModelConfig(
        id=new_id(), name="m", base_url="http://x/v1", model="m",
        input_price_per_mtok=Decimal(input_price) if input_price else None,
        output_price_per_mtok=Decimal(output_price) if output_price else None,
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def spending(
    model: ModelConfig, budgets: Budgets, ledger: MemoryCostLedger, **kw: bool
) -> Spending:
    return Spending(
        ledger, model, tenant_id=uuid.uuid4(), project_id=new_id(), run_id=new_id(),
        budgets=budgets, allow_unpriced=kw.get("allow", False), max_output_tokens=4096,
    )  # fmt: skip


async def test_the_last_cents_buy_a_shorter_reply_not_a_refusal() -> None:
    ledger = MemoryCostLedger()
    # 1000 prompt tokens at $2/M = $0.0023 with the margin; $0.01 left buys ~770 reply tokens.
    s = spending(priced(), Budgets(run_usd=Decimal("0.01")), ledger)
    hold = await s.reserve(1000)
    assert MIN_OUTPUT_TOKENS <= hold.max_tokens < 4096
    assert hold.reservation is not None
    assert hold.reservation.amount_usd <= Decimal("0.01")
    cost = await s.settle(hold, Usage(input_tokens=1000, output_tokens=100))
    assert cost == Decimal("0.003")
    with pytest.raises(BudgetExceeded, match="less than one more call"):
        await spending(priced(), Budgets(run_usd=Decimal("0.002")), ledger).reserve(1000)


async def test_an_unpriced_model_is_refused_only_where_a_budget_applies() -> None:
    ledger = MemoryCostLedger()
    free = priced(None, None)
    hold = await spending(free, Budgets(), ledger).reserve(10)
    assert hold.reservation is None
    with pytest.raises(BudgetExceeded, match="has no price"):
        spending(free, Budgets(tenant_usd=Decimal(5)), ledger).check_model()
    spending(free, Budgets(tenant_usd=Decimal(5)), ledger, allow=True).check_model()


# -- live deltas ---------------------------------------------------------------------------


async def test_deltas_are_batched_split_under_the_notify_cap_and_keep_their_order() -> None:
    from adapters.memory.event_feed import MemoryEventFeed

    feed = MemoryEventFeed()
    tenant, run = uuid.uuid4(), uuid.uuid4()
    subscription = feed.subscribe(tenant)
    publisher = DeltaPublisher(feed, tenant, run, interval=3600)
    text = "".join(f"line {n}\n" for n in range(1000))
    for piece in (text[i : i + 7] for i in range(0, len(text), 7)):
        await publisher.emit("stdout", piece, "call-1")
    await publisher.flush()
    received = ""
    while len(received) < len(text):
        notice = await anext(subscription)
        assert notice.kind == "delta"
        assert notice.call_id == "call-1"
        assert len(notice.text or "") <= 64 * 1024
        received += notice.text or ""
    assert received == text
    assert publisher.published == -(-len(text) // MAX_DELTA_CHARS)


# -- the file tree ---------------------------------------------------------------------------


async def test_the_file_tree_folds_deep_folders_to_fit_its_budget(tmp_path: Path) -> None:
    for n in range(300):
        path = tmp_path / "src" / f"pkg{n % 7}" / f"module_{n}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    (tmp_path / "README.md").write_text("")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("")
    roomy = await FileTreeContext().build(str(tmp_path), "q", token_budget=100_000)
    assert "module_299.py" in roomy.text
    tight = await FileTreeContext().build(str(tmp_path), "q", token_budget=60)
    assert tight.token_count <= 60
    assert "README.md" in tight.text
    assert "pkg0/ (43 files)" in tight.text or "src/ (300 files)" in tight.text
    assert ".git" not in roomy.text


# -- headless auto-approval ------------------------------------------------------------------


def test_headless_rules_follow_the_sandboxs_isolation() -> None:
    from codeforge.agent.approvals import auto_decision
    from codeforge.ports.sandbox import Capabilities

    isolated = Capabilities(
        isolates_filesystem=True, isolates_processes=True, isolates_network=True
    )
    bare = Capabilities()
    assert auto_decision("read", bare)[0]
    assert auto_decision("control", bare)[0]
    assert auto_decision("edit", isolated)[0]
    assert not auto_decision("edit", bare)[0]
    assert auto_decision("bash", isolated)[0]
    assert not auto_decision("bash", Capabilities(isolates_filesystem=True))[0]
    assert not auto_decision("network", isolated)[0]


# -- a run's past: rewinds ---------------------------------------------------------------


def test_a_rewind_drops_what_followed_but_keeps_the_checkpoint_of_its_target() -> None:
    from codeforge.agent.history import _apply_rewinds
    from codeforge.domain.events import (
        CheckpointCreated,
        CheckpointRestored,
        RunRewound,
        RunStarted,
        StoredEvent,
    )

    run = uuid.uuid4()

    def stored(seq: int, event: Any) -> StoredEvent:
        return StoredEvent(
            run_id=run, seq=seq, type=type(event).__name__, schema_version=1, event=event,
            tenant_id=run, created_at=NOW,
        )  # fmt: skip

    cp1, cp2 = uuid.uuid4(), uuid.uuid4()
    log = [
        stored(1, PromptAssembled(model="m", system="s", user="u")),
        stored(2, RunStarted(worker="w", lease_expires_at=NOW)),
        stored(3, ToolCallCompleted(call_id="a", tool="write_file", ok=True)),
        stored(4, CheckpointCreated(checkpoint_id=cp1, after_seq=3)),
        stored(5, ToolCallCompleted(call_id="b", tool="write_file", ok=True)),
        stored(6, CheckpointCreated(checkpoint_id=cp2, after_seq=5)),
        stored(7, RunRewound(to_seq=3, checkpoint_id=cp1)),
    ]
    kept, pending = _apply_rewinds(log)
    assert [e.seq for e in kept] == [1, 2, 3, 4, 7]
    assert pending is not None
    assert pending.checkpoint_id == cp1
    applied = [*log, stored(8, CheckpointRestored(checkpoint_id=cp1, reason="rewound"))]
    assert _apply_rewinds(applied)[1] is None


def test_replay_outputs_are_compared_without_durations_times_and_addresses() -> None:
    from codeforge.agent.replay import _steady

    assert _steady("Ran 1 test in 0.006s\nOK") == _steady("Ran 1 test in 0.013s\nOK")
    assert _steady("took 12.5 ms at 2026-12-01T07:39:35.265254Z") == _steady(
        "took 3 ms at 2027-01-02T00:00:00Z"
    )
    assert _steady("<obj at 0x7f8df9095030>") == _steady("<obj at 0x7f0000000001>")
    assert _steady("5 passed") != _steady("4 passed")
    assert _steady("1733038775123456789") != _steady("1733038775999999999")
