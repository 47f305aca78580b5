"""Git through the system `git` binary."""

from adapters.git.local import LocalGit

__all__ = ["LocalGit"]
