-- Tenants: the unit of isolation. Every other table carries tenant_id, and the
-- default tenant below is what a single-team install uses.
CREATE TABLE tenants (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- NULL means no cap. Money is NUMERIC: a ledger never rounds through floats.
    budget_usd NUMERIC(14, 6),
    max_steps INTEGER CHECK (max_steps > 0),
    max_wall_seconds INTEGER CHECK (max_wall_seconds > 0),
    max_cost_usd NUMERIC(14, 6) CHECK (max_cost_usd >= 0),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000000', 'default');
