"""The preset profiles: `config/policies/*.yaml`, read and checked once at start.

A preset is named after its file. A preset that does not load stops the start with
the file and line at fault (`PresetError`), instead of runs failing one by one later.
`policy.presets_dir` replaces the built-in folder (for operators who keep their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codeforge.domain.errors import NotFound
from codeforge.domain.policy import PolicyProfile
from codeforge.services.policy_documents import PolicyDocumentError, parse_policy

__all__ = ["PolicyPresets", "Preset", "PresetError", "builtin_presets_dir"]


class PresetError(Exception):
    """A preset cannot be loaded; str() says which file and line."""


@dataclass(frozen=True)
class Preset:
    name: str
    # The YAML as shipped: what "save as new profile" copies.
    document: str
    profile: PolicyProfile

    @property
    def description(self) -> str:
        return self.profile.description


def builtin_presets_dir() -> Path:
    package = Path(__file__).resolve().parents[1]
    for candidate in (
        package.parent / "config" / "policies",
        package / "_bundled" / "config" / "policies",
    ):
        if candidate.is_dir():
            return candidate
    raise PresetError("the built-in policy presets (config/policies) are missing from this install")


class PolicyPresets:
    def __init__(self, folder: Path | str | None = None) -> None:
        self.folder = Path(folder) if folder else builtin_presets_dir()
        self._presets: dict[str, Preset] = {}
        files = sorted(self.folder.glob("*.yaml")) if self.folder.is_dir() else []
        if not files:
            raise PresetError(f"no policy presets (*.yaml) in {self.folder}")
        for path in files:
            name = path.stem
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise PresetError(f"cannot read the policy preset {path}: {e.strerror}") from e
            try:
                profile = parse_policy(text, name=name, source=str(path))
            except PolicyDocumentError as e:
                raise PresetError(f"the policy preset {name!r} is invalid: {e.message}") from e
            self._presets[name] = Preset(name=name, document=text, profile=profile)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._presets)

    def list(self) -> list[Preset]:
        return [self._presets[name] for name in sorted(self._presets)]

    def find(self, name: str) -> Preset | None:
        return self._presets.get(name)

    def get(self, name: str) -> Preset:
        preset = self._presets.get(name)
        if preset is None:
            known = ", ".join(sorted(self._presets))
            raise NotFound(f"no preset named {name!r}; the presets are: {known}", field="preset")
        return preset
