ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_status_check;
UPDATE runs SET status = 'waiting_approval' WHERE status = 'awaiting_approval';
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN (
    'requested', 'running', 'waiting_approval', 'suspended',
    'succeeded', 'failed', 'cancelled'
));
