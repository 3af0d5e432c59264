"""The app's recipes as the library sees them.

The library (`src/`) never imports the app (`experiments/`): the app describes itself with
one `Recipes` value (`experiments.RECIPES`) and hands it to the library's commands. A
recipe `<name>` is the module `<package>.<name>` (an entry point) and its settings file
`<config_dir>/<name>.yaml`.
"""

import importlib.util
import shlex
from dataclasses import dataclass
from pathlib import Path

from src.core.errors import ConfigError, lookup


@dataclass(frozen=True)
class Recipes:
    package: str  # the app's package, e.g. "experiments"
    config_dir: Path  # <name>.yaml per recipe
    sweep_dir: Path  # ready-made sweep specs

    def config(self, name: str) -> Path:
        """`cifar_mlp` or `cifar_mlp.yaml` -> the recipe's settings file."""
        path = self.config_dir / (name if name.endswith(".yaml") else f"{name}.yaml")
        if not path.is_file():
            known = ", ".join(sorted(p.name for p in self.config_dir.glob("*.yaml")))
            raise ConfigError(f"no recipe {path.name} in {self.config_dir}; choose one of: "
                              f"{known}")
        return path

    def entry_points(self) -> dict[str, str]:
        """name -> module of every recipe that has its own entry point."""
        return {path.stem: f"{self.package}.{path.stem}"
                for path in sorted(self.config_dir.glob("*.yaml"))
                if importlib.util.find_spec(f"{self.package}.{path.stem}") is not None}

    def module(self, name: str) -> str:
        """`cifar_mlp` -> `experiments.cifar_mlp`, or one line listing the entry points."""
        return lookup(self.entry_points(), name, "entry point")

    def command(self, name: str, *args: str) -> str:
        """The shell command that runs the app's module `name` with `args`."""
        return shlex.join(["python", "-m", f"{self.package}.{name}", *args])
