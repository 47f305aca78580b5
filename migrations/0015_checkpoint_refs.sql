-- Which blobs each checkpoint uses, so pruned checkpoints' blobs can be collected
-- without scanning every manifest.
CREATE TABLE checkpoint_blob_refs (
    checkpoint_id UUID NOT NULL REFERENCES checkpoints (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (checkpoint_id, sha256)
);
CREATE INDEX checkpoint_blob_refs_sha_idx ON checkpoint_blob_refs (sha256);
INSERT INTO checkpoint_blob_refs (checkpoint_id, sha256)
    SELECT DISTINCT c.id, f.value->>'sha256'
    FROM checkpoints c, jsonb_each(c.files) AS f
    WHERE f.value->>'sha256' IS NOT NULL;
