"""Known-incompatible installed package pairs, named in one line instead of a deep traceback.

Each entry is a pair that installs together but fails at run time. ``doctor`` lists every
conflict in this environment; code that needs a pair calls :func:`require_compatible` with
the feature's name before it touches the library.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from t2i_bench.errors import BenchError


@dataclass(frozen=True)
class Conflict:
    """``package`` in ``versions`` cannot work with ``other`` in ``other_versions``."""

    package: str
    versions: str
    other: str
    other_versions: str
    feature: str  # the key code passes to require_compatible
    breaks: str  # what fails, in words
    fix: str

    def applies(self, installed: dict[str, str | None]) -> bool:
        mine, theirs = installed.get(self.package), installed.get(self.other)
        if mine is None or theirs is None:
            return False
        return Version(mine) in SpecifierSet(self.versions) and Version(theirs) in SpecifierSet(
            self.other_versions
        )

    def message(self, installed: dict[str, str | None]) -> str:
        return (
            f"{self.package} {installed[self.package]} and {self.other} {installed[self.other]} "
            f"are incompatible ({self.package}{self.versions} needs {self.other} outside "
            f"{self.other_versions}): {self.breaks} cannot be loaded; {self.fix}"
        )


KNOWN_CONFLICTS: tuple[Conflict, ...] = (
    Conflict(
        "transformers",
        ">=5.24",
        "peft",
        "<0.22",
        "peft_lora",
        "diffusers/PEFT LoRA files",
        "install the tested versions: pip install -c requirements.lock -e .",
    ),
)


def installed_versions(names: set[str] | None = None) -> dict[str, str | None]:
    """Installed version of each package named in a known conflict (None when absent)."""
    wanted = names or {n for c in KNOWN_CONFLICTS for n in (c.package, c.other)}
    out: dict[str, str | None] = {}
    for name in sorted(wanted):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def conflicts(installed: dict[str, str | None] | None = None) -> list[str]:
    """One line per known conflict present among the installed packages."""
    installed = installed if installed is not None else installed_versions()
    return [c.message(installed) for c in KNOWN_CONFLICTS if c.applies(installed)]


def require_compatible(
    feature: str, path: object = None, installed: dict[str, str | None] | None = None
) -> None:
    """Raise a one-line BenchError (naming ``path``, the file that needs ``feature``) when a
    known conflict breaks ``feature``."""
    installed = installed if installed is not None else installed_versions()
    for conflict in KNOWN_CONFLICTS:
        if conflict.feature == feature and conflict.applies(installed):
            raise BenchError(conflict.message(installed), path)
