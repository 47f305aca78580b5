-- Quality-gate options per project (tests, lint, diff cap, rollback, retries).
ALTER TABLE projects ADD COLUMN gates JSONB NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(gates) = 'object');
