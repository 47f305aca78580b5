DROP TABLE sessions;
DROP TABLE idempotency_keys;
