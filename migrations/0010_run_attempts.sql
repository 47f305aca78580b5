-- How many times a run was started or resumed: the reaper gives up on a run that keeps
-- losing its worker instead of resuming it for ever.
ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0);
-- Suspended runs are what the resume sweep looks for.
CREATE INDEX runs_suspended_idx ON runs (updated_at) WHERE status = 'suspended';
