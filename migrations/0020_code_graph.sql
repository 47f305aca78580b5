-- The code graph of each project's workspace, for the API's graph queries (the CLI
-- keeps graphs in its data-dir cache). Derived data: rebuilt from the workspace
-- whenever its file-set fingerprint changes, so it cascades away with its project.
-- Symbol ids are the engine's (dense per graph); a file's top level is the symbol
-- named '<module>' with idx -1, and import edges join top levels.

CREATE TABLE code_graphs (
    project_id UUID PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    tenant_id UUID NOT NULL,
    fingerprint TEXT NOT NULL,
    built_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE code_symbols (
    project_id UUID NOT NULL REFERENCES code_graphs (project_id) ON DELETE CASCADE,
    id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX code_symbols_name_idx ON code_symbols (project_id, name);
CREATE INDEX code_symbols_path_idx ON code_symbols (project_id, path);

CREATE TABLE code_edges (
    project_id UUID NOT NULL REFERENCES code_graphs (project_id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('calls', 'imports')),
    src INTEGER NOT NULL,
    dst INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (project_id, kind, src, dst)
);
CREATE INDEX code_edges_dst_idx ON code_edges (project_id, kind, dst);
