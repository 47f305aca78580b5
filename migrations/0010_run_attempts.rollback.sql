DROP INDEX IF EXISTS runs_suspended_idx;
ALTER TABLE runs DROP COLUMN IF EXISTS attempts;
