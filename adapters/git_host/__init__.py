"""Git hosts (GitHub, GitLab, Gitea/Forgejo) through their REST APIs, over aiohttp."""

from adapters.git_host.gitea import GiteaHost
from adapters.git_host.github import GitHubHost
from adapters.git_host.gitlab import GitLabHost

__all__ = ["GitHubHost", "GitLabHost", "GiteaHost"]
