-- Outbox claims: several relays (one per `serve`/`worker` process) share the
-- outbox. A relay claims a batch with a lease; a relay that dies mid-publish
-- only delays its batch until the lease runs out, never strands it.

-- The entry may not be claimed before this instant: the end of a claim's lease,
-- or the retry time a failed publish asked for. NULL: claimable now.
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMPTZ;
-- Why the last publish failed, for operators looking at a stuck entry.
ALTER TABLE outbox ADD COLUMN last_error TEXT;

-- What a claim scans, in the order it claims: unpublished entries, oldest first.
DROP INDEX outbox_unpublished_idx;
CREATE INDEX outbox_unpublished_idx ON outbox (created_at, id) WHERE published_at IS NULL;
-- What a purge scans: published entries by age.
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
