-- HTTP state that must survive a restart and be shared by every API process:
-- idempotency records (a retried unsafe request replays the first response)
-- and browser sessions (a signed cookie alone cannot be revoked early).

-- `scope` is the tenant plus the caller's API key id, so two callers never
-- share a key; it carries the tenant, hence no tenant_id column here.
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    -- What the request was (method, path, body hash): a reuse of the key for
    -- another request is refused instead of replaying the wrong response.
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
    status_code INTEGER,
    headers JSONB,
    body BYTEA,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key),
    -- A completed record always carries the response it replays.
    CHECK (state = 'in_progress' OR (status_code IS NOT NULL AND headers IS NOT NULL
                                     AND body IS NOT NULL))
);

-- purge_expired deletes by expiry.
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

CREATE TABLE sessions (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    key_id UUID NOT NULL,
    -- SHA-256 of the CSRF token: the token itself only ever lives in the browser.
    csrf_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- Revoking an API key ends the sessions opened with it.
CREATE INDEX sessions_key_id ON sessions (key_id);
