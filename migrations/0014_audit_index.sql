-- The audit trail reads a tenant's decisions and deliveries by event type, in log order.
CREATE INDEX run_events_tenant_type_idx ON run_events (tenant_id, type, position);
