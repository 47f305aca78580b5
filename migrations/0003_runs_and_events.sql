-- Runs, their event log and the transactional outbox (ARCHITECTURE.md, "Runs,
-- events and the feed"). The log is the source of truth; `runs` is a projection
-- updated in the same transaction as every append, so it can be rebuilt from it.

CREATE TABLE runs (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    -- No foreign keys to projects, tasks or agents: a run and its log must
    -- outlive edits to them, and those tables belong to another migration.
    project_id UUID NOT NULL,
    task_id UUID NOT NULL,
    agent_id UUID NOT NULL,
    status TEXT NOT NULL CHECK (status IN (
        'requested', 'running', 'waiting_approval', 'suspended',
        'succeeded', 'failed', 'cancelled'
    )),
    mode TEXT NOT NULL,
    deliver TEXT NOT NULL,
    limits JSONB NOT NULL DEFAULT '{}',
    policy_overrides JSONB NOT NULL DEFAULT '{}',
    result JSONB,
    -- Unconstrained NUMERIC: per-call LLM costs go below a millionth of a dollar,
    -- and the ledger never rounds.
    cost_usd NUMERIC NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    steps INTEGER NOT NULL DEFAULT 0 CHECK (steps >= 0),
    last_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    lease_owner TEXT,
    lease_expires_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX runs_tenant_id_idx ON runs (tenant_id, id);
CREATE INDEX runs_tenant_status_idx ON runs (tenant_id, status);
CREATE INDEX runs_tenant_task_idx ON runs (tenant_id, task_id);
CREATE INDEX runs_tenant_agent_idx ON runs (tenant_id, agent_id);
-- The lease reaper looks only at running runs whose lease ran out.
CREATE INDEX runs_lease_expiry_idx ON runs (lease_expires_at) WHERE status = 'running';

CREATE TABLE run_events (
    -- The log's global order: pages events across the runs of a task or agent.
    position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    type TEXT NOT NULL,
    schema_version INTEGER NOT NULL CHECK (schema_version >= 1),
    payload JSONB NOT NULL,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    -- Copied from the run so that reads by task or agent need no join.
    task_id UUID,
    agent_id UUID,
    request_id TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Also the index that serves reading one run's log in seq order.
    CONSTRAINT run_events_run_seq_key UNIQUE (run_id, seq)
);

CREATE INDEX run_events_tenant_task_idx ON run_events (tenant_id, task_id, position);
CREATE INDEX run_events_tenant_agent_idx ON run_events (tenant_id, agent_id, position);

-- Messages written in the same transaction as the state that caused them; a relay
-- publishes them after commit, so a queue outage delays work but never loses it.
CREATE TABLE outbox (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    subject TEXT NOT NULL,
    payload JSONB NOT NULL,
    headers JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX outbox_tenant_idx ON outbox (tenant_id, created_at);
-- What the relay scans: only the messages still to publish.
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;
