-- Stored policies: tenant-wide global policies and named profiles (per project or for
-- every project of the tenant). The YAML document is kept as written; description and
-- mode are copies from it for listings. (The column is policy_scope: the generic store
-- names its tenant placeholder `scope`.) A name is unique within its place: one
-- project's policies, or the tenant-wide ones (project_id NULL).

CREATE TABLE policies (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    name TEXT NOT NULL,
    policy_scope TEXT NOT NULL DEFAULT 'project' CHECK (policy_scope IN ('global', 'project')),
    project_id UUID,
    document TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT 'default',
    based_on TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CHECK (policy_scope = 'project' OR project_id IS NULL)
);
CREATE UNIQUE INDEX policies_tenant_place_name_key
    ON policies (tenant_id, COALESCE(project_id, '00000000-0000-0000-0000-000000000000'), name);
CREATE INDEX policies_tenant_idx ON policies (tenant_id, id);
