DROP TABLE IF EXISTS run_artifacts;
DROP TABLE IF EXISTS checkpoints;
DROP TABLE IF EXISTS checkpoint_blobs;
DROP TABLE IF EXISTS cost_accounts;
DROP TABLE IF EXISTS cost_ledger;
ALTER TABLE projects DROP COLUMN IF EXISTS budget_usd;
