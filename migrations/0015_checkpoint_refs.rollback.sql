DROP TABLE IF EXISTS checkpoint_blob_refs;
