-- Dead letters: messages the queue gave up on (a handler failed on every retry, or
-- the body never decoded), kept so an operator can read why and replay them.
-- The queue is shared by every tenant, so this table is not tenant-scoped: the
-- tenant, when there is one, is inside the payload. Only admins of the default
-- tenant (the installation's operators) see it.
CREATE TABLE dead_letters (
    -- The DeadLetter's own id: recording one twice (a redelivered DLQ message)
    -- stores it once.
    id UUID PRIMARY KEY,
    -- The subject the original message was published to, not its ".dlq" subject.
    subject TEXT NOT NULL,
    -- The original body byte for byte: it may not even be JSON (reason invalid_payload).
    payload BYTEA NOT NULL,
    headers JSONB NOT NULL DEFAULT '{}',
    reason TEXT NOT NULL CHECK (reason IN ('handler_failed', 'invalid_payload')),
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    consumer TEXT NOT NULL,
    -- When the queue gave up (the consumer's clock); listings order by it.
    failed_at TIMESTAMPTZ NOT NULL,
    -- When this table first heard of it.
    recorded_at TIMESTAMPTZ NOT NULL,
    -- The last replay, and how many there were.
    replayed_at TIMESTAMPTZ,
    replay_count INTEGER NOT NULL DEFAULT 0 CHECK (replay_count >= 0)
);

-- Listings: newest first, paged by (failed_at, id).
CREATE INDEX dead_letters_failed_at_idx ON dead_letters (failed_at, id);
-- Listings of one subject.
CREATE INDEX dead_letters_subject_idx ON dead_letters (subject, failed_at, id);
