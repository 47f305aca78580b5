-- A run waiting for an approver is `awaiting_approval` (the name the approvals
-- contract uses), no longer `waiting_approval`.
ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_status_check;
UPDATE runs SET status = 'awaiting_approval' WHERE status = 'waiting_approval';
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN (
    'requested', 'running', 'awaiting_approval', 'suspended',
    'succeeded', 'failed', 'cancelled'
));
