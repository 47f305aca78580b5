-- A project's git host (GitHub, GitLab, Gitea/Forgejo) for delivery mode `pr`:
-- {kind, repository, token_secret, api_url, draft}, written by msgspec. NULL: none.
-- The token itself is never stored here, only the name of the secret holding it.
ALTER TABLE projects ADD COLUMN git_host JSONB
    CHECK (git_host IS NULL OR jsonb_typeof(git_host) = 'object');
