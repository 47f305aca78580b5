-- The core entities: projects, their tasks, agents, model configurations and API keys.
-- Every row belongs to a tenant (no foreign key: the default tenant may be implicit)
-- and carries an optimistic-lock version. Structured values (limits, lists) are JSONB
-- written by msgspec, so Decimals inside them travel as exact strings.
-- No foreign key from tasks to projects either: which deletions cascade or are
-- refused is a rule of the services, which the in-memory stores could not mirror.

CREATE TABLE projects (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    source_kind TEXT NOT NULL CHECK (source_kind IN ('path', 'url')),
    default_branch TEXT NOT NULL DEFAULT 'main',
    quality_gates JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(quality_gates) = 'array'),
    policy_profile TEXT NOT NULL DEFAULT 'default',
    limits JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(limits) = 'object'),
    description TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT projects_tenant_name_key UNIQUE (tenant_id, name)
);
CREATE INDEX projects_tenant_idx ON projects (tenant_id, id);

CREATE TABLE tasks (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    project_id UUID NOT NULL,
    title TEXT NOT NULL,
    prompt TEXT NOT NULL,
    acceptance_criteria JSONB NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(acceptance_criteria) = 'array'),
    status TEXT NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'running', 'done', 'failed', 'cancelled')),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX tasks_tenant_idx ON tasks (tenant_id, id);
CREATE INDEX tasks_tenant_project_idx ON tasks (tenant_id, project_id, id);

CREATE TABLE agents (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    name TEXT NOT NULL,
    backend TEXT NOT NULL DEFAULT 'native' CHECK (backend IN ('native', 'aider')),
    -- The name of a model configuration; a name, not a key, so a model can be
    -- replaced under the same name without editing every agent.
    model TEXT NOT NULL,
    policy_profile TEXT NOT NULL DEFAULT 'default',
    limits JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(limits) = 'object'),
    instructions TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT agents_tenant_name_key UNIQUE (tenant_id, name)
);
CREATE INDEX agents_tenant_idx ON agents (tenant_id, id);

CREATE TABLE model_configs (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    -- The NAME of a secret, never the key itself.
    api_key_secret TEXT NOT NULL DEFAULT '',
    -- Unconstrained NUMERIC: prices per million tokens are exact, never rounded.
    input_price_per_mtok NUMERIC,
    output_price_per_mtok NUMERIC,
    context_window INTEGER NOT NULL DEFAULT 128000,
    source TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'config')),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT model_configs_tenant_name_key UNIQUE (tenant_id, name)
);
CREATE INDEX model_configs_tenant_idx ON model_configs (tenant_id, id);

CREATE TABLE api_keys (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    -- Public and global: a presented key is found by its prefix before its tenant is known.
    prefix TEXT NOT NULL CONSTRAINT api_keys_prefix_key UNIQUE,
    key_hash TEXT NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, id);
