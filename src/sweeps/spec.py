"""A sweep specification: what to search, how, and with which budget (one YAML file).

    base: cifar_mlp                  # the entry point: python -m experiments.<base>
    method: grid                     # grid | random | coarse_to_fine
    parameters:
      model.lr: [1.0e-3, 3.0e-3]     # a list: grid values / random choices
      model.weight_decay: {min: 1.0e-4, max: 1.0e-1, log: true, num: 4}
    trials: 8                        # random: number of samples
    seed: 0                          # random: sampling seed
    flags: [--trainer.max_epochs, 3] # fixed flags for every trial
    budget: {max_trials: 20, max_minutes: 60}
    prune: {after_epochs: 1, min_trials: 2}   # or prune: false
    coarse_to_fine: {coarse_epochs: 2, fine_epochs: 6, fine_trials: 6}
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from src.core.errors import ConfigError, check_range, lookup
from src.sweeps.space import Space, parse_space

METHODS = ("grid", "random", "coarse_to_fine")
TOP_LEVEL_KEYS = {"base", "method", "parameters", "trials", "seed", "flags", "budget", "prune",
                  "coarse_to_fine"}


class _YamlLoader(yaml.SafeLoader):
    """PyYAML reads 1e-3 (no dot) as a string; read it as the float everyone means."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)


@dataclass(frozen=True)
class Budget:
    max_trials: int | None = None
    max_minutes: float | None = None


@dataclass(frozen=True)
class Pruning:
    """Stop a trial whose val/acc at an epoch is below the median of the earlier trials'
    val/acc at that epoch, from epoch `after_epochs` on, once `min_trials` reached it."""

    after_epochs: int = 1
    min_trials: int = 2


@dataclass(frozen=True)
class CoarseToFine:
    coarse_epochs: int = 2
    fine_epochs: int = 6
    fine_trials: int = 6


@dataclass(frozen=True)
class SweepSpec:
    base: str
    method: str
    space: Space
    trials: int = 10
    seed: int = 0
    flags: tuple[str, ...] = ()
    budget: Budget = field(default_factory=Budget)
    prune: Pruning | None = field(default_factory=Pruning)
    coarse_to_fine: CoarseToFine = field(default_factory=CoarseToFine)


def _section(raw: dict, name: str, cls: type) -> Any:
    values = raw.get(name) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"sweep spec: `{name}:` must be a mapping, not {values!r}")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"sweep spec: unknown key(s) {unknown} in `{name}:`; "
                          f"choose from: {', '.join(sorted(known))}")
    return cls(**values)


def parse_spec(raw: dict[str, Any]) -> SweepSpec:
    if not isinstance(raw, dict):
        raise ConfigError("a sweep spec is a YAML mapping with base, method and parameters")
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"sweep spec: unknown key(s) {unknown}; choose from: "
                          f"{', '.join(sorted(TOP_LEVEL_KEYS))}")
    if not raw.get("base"):
        raise ConfigError("sweep spec: `base:` names the entry point, e.g. base: cifar_mlp")
    method = lookup({m: m for m in METHODS}, raw.get("method", "grid"), "sweep method")
    flags = raw.get("flags") or []
    if not isinstance(flags, list):
        raise ConfigError("sweep spec: `flags:` is a list, e.g. [--trainer.max_epochs, 3]")
    prune = None if raw.get("prune") is False else _section(raw, "prune", Pruning)
    spec = SweepSpec(
        base=str(raw["base"]), method=method, space=parse_space(raw.get("parameters")),
        trials=int(raw.get("trials", 10)), seed=int(raw.get("seed", 0)),
        flags=tuple(str(flag) for flag in flags), budget=_section(raw, "budget", Budget),
        prune=prune, coarse_to_fine=_section(raw, "coarse_to_fine", CoarseToFine))
    check_spec(spec)
    return spec


def check_spec(spec: SweepSpec) -> None:
    check_range("trials", spec.trials, 1)
    if spec.budget.max_trials is not None:
        check_range("budget.max_trials", spec.budget.max_trials, 1)
    if spec.budget.max_minutes is not None:
        check_range("budget.max_minutes", spec.budget.max_minutes, 0.0, low_inclusive=False)
    if spec.prune is not None:
        check_range("prune.after_epochs", spec.prune.after_epochs, 1)
        check_range("prune.min_trials", spec.prune.min_trials, 1)
    steps = spec.coarse_to_fine
    check_range("coarse_to_fine.coarse_epochs", steps.coarse_epochs, 1)
    check_range("coarse_to_fine.fine_epochs", steps.fine_epochs, 1)
    check_range("coarse_to_fine.fine_trials", steps.fine_trials, 1)


def load_spec(path: Path) -> SweepSpec:
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} does not exist")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"sweep spec {path} is not valid YAML: {error}") from None
    return parse_spec(raw)
