-- The agent runtime: the cost ledger, checkpoint blobs and run artifacts; projects
-- get a total budget (tenants already have one). No foreign keys to runs: the
-- in-memory adapters, which the same contract suites check, could not mirror them.

ALTER TABLE projects ADD COLUMN budget_usd NUMERIC CHECK (budget_usd >= 0);

-- One row per model call: held while the call runs, then settled (or released).
CREATE TABLE cost_ledger (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL,
    project_id UUID NOT NULL,
    run_id UUID NOT NULL,
    model TEXT NOT NULL,
    reserved_usd NUMERIC NOT NULL CHECK (reserved_usd >= 0),
    cost_usd NUMERIC CHECK (cost_usd >= 0),
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'settled', 'released')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at TIMESTAMPTZ
);
CREATE INDEX cost_ledger_tenant_time_idx ON cost_ledger (tenant_id, created_at);
CREATE INDEX cost_ledger_run_held_idx ON cost_ledger (run_id) WHERE state = 'held';

-- Running totals per scope, locked by `reserve` so concurrent calls cannot pass a
-- budget together. They only ever grow: nothing resets a budget.
CREATE TABLE cost_accounts (
    tenant_id UUID NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('tenant', 'project', 'run', 'model')),
    scope_key TEXT NOT NULL,
    spent_usd NUMERIC NOT NULL DEFAULT 0 CHECK (spent_usd >= 0),
    held_usd NUMERIC NOT NULL DEFAULT 0 CHECK (held_usd >= 0),
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    calls INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, scope, scope_key)
);

-- Checkpoint contents, addressed by sha256 and stored once (no tenant: a blob is
-- reachable only through a tenant's checkpoint manifest).
CREATE TABLE checkpoint_blobs (
    sha256 TEXT PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size BIGINT NOT NULL,
    content BYTEA NOT NULL
);

CREATE TABLE checkpoints (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL,
    run_id UUID NOT NULL,
    after_seq INTEGER NOT NULL CHECK (after_seq >= 1),
    base_commit TEXT NOT NULL,
    -- {path: {"sha256": hex | null, "mode": int, "size": int}}
    files JSONB NOT NULL,
    changed JSONB NOT NULL DEFAULT '[]',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX checkpoints_run_idx ON checkpoints (tenant_id, run_id, after_seq);

CREATE TABLE run_artifacts (
    run_id UUID NOT NULL,
    name TEXT NOT NULL,
    tenant_id UUID NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    content BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, name)
);
