"""Export a sweep spec as a W&B sweep configuration, for `wandb sweep` and `wandb agent`.

W&B then plays the part of our sweep loop: its server proposes the values, each agent
runs the entry point with them (`${args}` expands to `--model.lr=0.01 ...`, which the
LightningCLI parses) and logs val/acc to W&B, where the sweep reads it.
"""

from typing import Any

from src.core.errors import ConfigError
from src.sweeps.run_metrics import MONITOR
from src.sweeps.space import Choice, grid_points
from src.sweeps.spec import SweepSpec


def _distribution(log: bool, integer: bool) -> str:
    if integer:
        return "q_log_uniform_values" if log else "int_uniform"
    return "log_uniform_values" if log else "uniform"


def wandb_sweep_config(spec: SweepSpec, module: str,
                       extra_flags: list[str] | None = None) -> dict[str, Any]:
    if spec.method not in ("grid", "random"):
        raise ConfigError(f"W&B sweeps run grid or random search, not {spec.method}; export "
                          f"each phase as its own grid or random spec")
    parameters: dict[str, Any] = {}
    for key, dimension in spec.space.items():
        if spec.method == "grid" or isinstance(dimension, Choice):
            parameters[key] = {"values": grid_points(key, dimension)}
            continue
        entry = {"distribution": _distribution(dimension.log, dimension.integer),
                 "min": int(dimension.low) if dimension.integer else dimension.low,
                 "max": int(dimension.high) if dimension.integer else dimension.high}
        if dimension.integer and dimension.log:
            entry["q"] = 1
        parameters[key] = entry
    config: dict[str, Any] = {
        "program": module.replace(".", "/") + ".py",
        "method": spec.method,
        "metric": {"name": MONITOR, "goal": "maximize"},
        "parameters": parameters,
        "command": ["${env}", "${interpreter}", "-m", module, *spec.flags, *(extra_flags or []),
                    "--wandb.enabled", "true", "${args}"],
    }
    if spec.method == "random":
        config["run_cap"] = min(spec.trials, spec.budget.max_trials or spec.trials)
    if spec.prune is not None:
        # W&B's early termination counts iterations as logged val/acc values: epochs.
        config["early_terminate"] = {"type": "hyperband", "min_iter": spec.prune.after_epochs}
    return config
