DROP INDEX IF EXISTS run_events_tenant_type_idx;
