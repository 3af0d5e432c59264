"""Learning-rate schedule factory: names -> torch.optim.lr_scheduler classes.

Every length comes from the trainer (`RunLength.from_trainer`: optimizer steps in the
run, optimizer steps per epoch), never from a hard-coded number. Each schedule steps
where its definition lives: per optimizer step ("step": smooth curves over the run) or
per epoch ("epoch": drops at epoch boundaries, reactions to a validation metric), and
says so in the Lightning scheduler config it returns.

A linear warm-up can go in front of any schedule. It ramps from
`warmup_start_factor` x the schedule's first learning rate up to that rate over the
first `warmup_steps` (or `warmup_epochs` x steps per epoch) optimizer steps:
- a step-wise schedule then starts, and spans the remaining steps (`SequentialLR`);
- an epoch-wise schedule keeps counting epochs from the start of the run, and the
  ramp multiplies its rate during the warm-up (a second, per-step scheduler).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch.optim import Optimizer, lr_scheduler

from src.core.errors import ConfigError, check_range, lookup
from src.core.settings import check_settings, setting, settings_group
from src.modules.optimizers import uses_momentum

CYCLIC_MODES: dict[str, str] = {name: name for name in ("triangular", "triangular2", "exp_range")}
# Metrics reduce_on_plateau can watch, and whether lower or higher is better.
PLATEAU_MONITORS: dict[str, str] = {"val/loss": "min", "val/acc": "max"}


@dataclass(frozen=True)
class RunLength:
    """The lengths a schedule needs, as the trainer will run them."""

    total_steps: int  # optimizer steps the schedule spans
    steps_per_epoch: int  # optimizer steps per training epoch
    val_every_n_epochs: int = 1
    has_validation: bool = True

    @classmethod
    def from_trainer(cls, trainer: Any) -> "RunLength":
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ConfigError("learning-rate schedules need a run of known length; set "
                              "--trainer.max_epochs or --trainer.max_steps")
        if trainer.train_dataloader is None:  # not loaded when max_steps alone set the length
            trainer.fit_loop.setup_data()
        if not math.isfinite(trainer.num_training_batches):
            raise ConfigError("learning-rate schedules need the number of batches per epoch; "
                              "the training loader has no length")
        # Lightning's own count: one optimizer step per `accumulate_grad_batches` batches.
        steps_per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        datamodule = trainer.datamodule
        has_validation = (trainer.limit_val_batches != 0
                          and getattr(datamodule, "has_validation", True))
        return cls(total_steps=max(int(total), 1), steps_per_epoch=max(steps_per_epoch, 1),
                   val_every_n_epochs=trainer.check_val_every_n_epoch or 1,
                   has_validation=has_validation)


@dataclass
class Schedule:
    scheduler: Any  # a torch.optim.lr_scheduler.LRScheduler (or ReduceLROnPlateau)
    interval: str  # "step": after every optimizer step; "epoch": after every epoch
    monitor: str | None = None  # the metric of a reduce-on-plateau schedule
    frequency: int = 1


ScheduleBuilder = Callable[[Optimizer, "ScheduleSettings", RunLength], Schedule | None]


def _constant(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> None:
    return None


# -- per epoch ---------------------------------------------------------------------------


def _step(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    return Schedule(lr_scheduler.StepLR(optimizer, step_size=s.step_size_epochs,
                                        gamma=s.step_gamma), "epoch")


def _multistep(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    return Schedule(lr_scheduler.MultiStepLR(optimizer, milestones=list(s.milestone_epochs),
                                             gamma=s.step_gamma), "epoch")


def _exponential(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    return Schedule(lr_scheduler.ExponentialLR(optimizer, gamma=s.exponential_gamma), "epoch")


def _linear_then_constant(optimizer: Optimizer, s: "ScheduleSettings",
                          run: RunLength) -> Schedule:
    # Linear decay until epoch `decay_epochs`, then constant (Goodfellow et al., Deep
    # Learning, sec. 8.3.1); LinearLR keeps its end value after total_iters.
    return Schedule(lr_scheduler.LinearLR(optimizer, start_factor=1.0,
                                          end_factor=s.linear_end_factor,
                                          total_iters=s.decay_epochs), "epoch")


def _reduce_on_plateau(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    if not run.has_validation:
        raise ConfigError(f"scheduler reduce_on_plateau watches {s.plateau_monitor}, but this "
                          "run has no validation set; set --data.val_fraction (e.g. 0.1)")
    mode = lookup(PLATEAU_MONITORS, s.plateau_monitor, "plateau_monitor")
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=s.plateau_factor,
                                               patience=s.plateau_patience, min_lr=s.min_lr)
    # Step once per validation, so patience counts validations, not stale repeats.
    return Schedule(scheduler, "epoch", monitor=s.plateau_monitor,
                    frequency=run.val_every_n_epochs)


# -- per optimizer step ------------------------------------------------------------------


def _inverse_time(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    # lr0 / (1 + decay * step): no torch class has it, hence LambdaLR.
    decay = s.inverse_time_decay
    return Schedule(lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + decay * step)),
                    "step")


def _linear(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    return Schedule(lr_scheduler.LinearLR(optimizer, start_factor=1.0,
                                          end_factor=s.linear_end_factor,
                                          total_iters=run.total_steps), "step")


def _cosine(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    # Stepped per batch so the decay is smooth even for runs of a few epochs.
    return Schedule(lr_scheduler.CosineAnnealingLR(optimizer, T_max=run.total_steps,
                                                   eta_min=s.min_lr), "step")


def _cosine_restarts(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    # SGDR counts T_0 in epochs but anneals within them; T_0 in optimizer steps does both.
    first_period = int(s.restart_epochs) * run.steps_per_epoch
    return Schedule(lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=first_period, T_mult=int(s.restart_mult), eta_min=s.min_lr), "step")


def _cyclic(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    # Smith's cyclical learning rates between cyclic_base_lr and lr; momentum is left
    # alone (cycling it came later, with one-cycle) so every optimizer can use it.
    half_cycle = max(1, round(s.cyclic_step_epochs * run.steps_per_epoch))
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return Schedule(lr_scheduler.CyclicLR(
        optimizer, base_lr=s.cyclic_base_lr, max_lr=max_lr, step_size_up=half_cycle,
        mode=lookup(CYCLIC_MODES, s.cyclic_mode, "cyclic_mode"), gamma=s.cyclic_gamma,
        cycle_momentum=False), "step")


def _onecycle(optimizer: Optimizer, s: "ScheduleSettings", run: RunLength) -> Schedule:
    # torch's one-cycle also cycles momentum (or Adam's beta1) against the rate, but only
    # where the optimizer uses momentum: it would switch momentum on for the others.
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return Schedule(lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=run.total_steps,
        pct_start=s.onecycle_pct_start, cycle_momentum=uses_momentum(optimizer)), "step")


SCHEDULERS: dict[str, ScheduleBuilder] = {
    "constant": _constant,
    "step": _step,
    "multistep": _multistep,
    "exponential": _exponential,
    "inverse_time": _inverse_time,
    "linear_then_constant": _linear_then_constant,
    "linear": _linear,
    "cosine": _cosine,
    "cosine_restarts": _cosine_restarts,
    "cyclic": _cyclic,
    "onecycle": _onecycle,
    "reduce_on_plateau": _reduce_on_plateau,
}


def _for(*names: str) -> tuple[str, tuple[str, ...]]:
    return ("scheduler", names)


@settings_group
@dataclass(frozen=True)
class ScheduleSettings:
    """How the learning rate changes over the run; lengths come from the trainer."""

    scheduler: str = setting("onecycle", "learning-rate schedule", choices=SCHEDULERS)
    warmup_epochs: int = setting(0, "linear warm-up over this many epochs before the "
                                 "schedule (0: none)", low=0)
    warmup_steps: int = setting(0, "or over this many optimizer steps (set one of the two)",
                                low=0)
    warmup_start_factor: float = setting(
        0.01, "the warm-up starts at this fraction of the schedule's first learning rate",
        low=0.0, high=1.0, low_inclusive=False)
    onecycle_pct_start: float = setting(
        0.25, "fraction of the run spent increasing the learning rate", low=0.0, high=1.0,
        low_inclusive=False, high_inclusive=False, applies=_for("onecycle"))
    step_size_epochs: int = setting(30, "epochs between learning-rate drops", low=1,
                                    applies=_for("step"))
    step_gamma: float = setting(0.1, "factor of each drop", low=0.0, high=1.0,
                                low_inclusive=False, applies=_for("step", "multistep"))
    milestone_epochs: tuple[int, ...] = setting(
        (30, 60, 80), "epochs at which the rate drops by step_gamma (increasing)", low=1,
        applies=_for("multistep"))
    exponential_gamma: float = setting(0.98, "learning-rate factor per epoch", low=0.0,
                                       high=1.0, low_inclusive=False,
                                       applies=_for("exponential"))
    inverse_time_decay: float = setting(
        1e-3, "lr / (1 + inverse_time_decay * step), step = optimizer steps", low=0.0,
        applies=_for("inverse_time"))
    linear_end_factor: float = setting(0.01, "final rate as a fraction of lr", low=0.0,
                                       high=1.0, applies=_for("linear", "linear_then_constant"))
    decay_epochs: int = setting(10, "epochs of linear decay before the rate stays constant",
                                low=1, applies=_for("linear_then_constant"))
    min_lr: float = setting(0.0, "final / lowest learning rate (at most lr)", low=0.0,
                            applies=_for("cosine", "cosine_restarts", "reduce_on_plateau"))
    restart_epochs: int = setting(10, "epochs until the first restart (T_0)", low=1,
                                  applies=_for("cosine_restarts"))
    restart_mult: int = setting(1, "factor by which each period grows (T_mult)", low=1,
                                applies=_for("cosine_restarts"))
    cyclic_mode: str = setting("triangular", "cycle shape", choices=CYCLIC_MODES,
                               applies=_for("cyclic"))
    cyclic_base_lr: float = setting(1e-4, "lowest rate of each cycle; lr is the highest",
                                    low=0.0, low_inclusive=False, applies=_for("cyclic"))
    cyclic_step_epochs: float = setting(
        2.0, "epochs from the lowest to the highest rate (half a cycle)", low=0.0,
        low_inclusive=False, applies=_for("cyclic"))
    cyclic_gamma: float = setting(0.9995, "exp_range amplitude factor per optimizer step",
                                  low=0.0, high=1.0, low_inclusive=False,
                                  applies=_for("cyclic"))
    plateau_monitor: str = setting("val/loss", "metric to watch: val/loss (lower is better) "
                                   "or val/acc (higher is better)", choices=PLATEAU_MONITORS,
                                   applies=_for("reduce_on_plateau"))
    plateau_factor: float = setting(0.1, "factor of each reduction", low=0.0, high=1.0,
                                    low_inclusive=False, high_inclusive=False,
                                    applies=_for("reduce_on_plateau"))
    plateau_patience: int = setting(3, "validations without improvement before a reduction",
                                    low=0, applies=_for("reduce_on_plateau"))


def validate_scheduler(s: ScheduleSettings, lr: float) -> None:
    """Fail early (before any training or file output) on a bad name or value."""
    check_settings(s)
    key = s.scheduler.lower()
    if s.warmup_epochs > 0 and s.warmup_steps > 0:
        raise ConfigError("set warmup_epochs or warmup_steps, not both "
                          f"(got {s.warmup_epochs} and {s.warmup_steps})")
    milestones = list(s.milestone_epochs)
    increasing = all(a < b for a, b in zip(milestones, milestones[1:], strict=False))
    if not milestones or not increasing:
        raise ConfigError(f"milestone_epochs={milestones!r} must be increasing epochs >= 1, "
                          "e.g. [30, 60, 80]")
    # A final rate above the peak would make these schedules climb instead of decay.
    if key in ("cosine", "cosine_restarts", "reduce_on_plateau"):
        check_range("min_lr", s.min_lr, 0.0, lr)
    if key == "cyclic":
        check_range("cyclic_base_lr", s.cyclic_base_lr, 0.0, lr, low_inclusive=False,
                    high_inclusive=False)


def warmup_length(s: ScheduleSettings, run: RunLength) -> int:
    """Warm-up length in optimizer steps (0: no warm-up)."""
    return s.warmup_steps if s.warmup_steps > 0 else s.warmup_epochs * run.steps_per_epoch


def make_scheduler(optimizer: Optimizer, settings: ScheduleSettings,
                   run: RunLength) -> list[Schedule]:
    """The schedules Lightning should step for this optimizer (none: constant rate)."""
    builder = lookup(SCHEDULERS, settings.scheduler, "scheduler")
    warmup = warmup_length(settings, run)
    if warmup > run.total_steps:
        raise ConfigError(f"a warm-up of {warmup} optimizer steps does not fit in this run of "
                          f"{run.total_steps} steps; shorten the warm-up or train longer")
    # Build the schedule first: it sets each group's "initial_lr" to its first rate (lr;
    # lr / 25 for one-cycle; cyclic_base_lr for cyclic), which is where the ramp ends.
    main = builder(optimizer, settings, replace(run, total_steps=max(run.total_steps - warmup, 1)))
    if warmup == 0:
        return [] if main is None else [main]
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=settings.warmup_start_factor,
                                 end_factor=1.0, total_iters=warmup)
    if main is None:
        return [Schedule(ramp, "step")]
    if main.interval == "epoch":
        # Both chainable: the ramp multiplies whatever rate the epoch-wise schedule has set.
        return [main, Schedule(ramp, "step")]
    # SequentialLR restarts from "initial_lr", runs the ramp, then the schedule from its step 0.
    combined = lr_scheduler.SequentialLR(optimizer, [ramp, main.scheduler], milestones=[warmup])
    return [Schedule(combined, "step")]


def lightning_scheduler_configs(schedules: list[Schedule]) -> list[dict[str, Any]]:
    """Lightning's `lr_scheduler` dicts. All are named "lr": they set one rate, which the
    LR monitor logs once (as "lr", or "lr/decay" and "lr/no_decay" per parameter group)."""
    configs = []
    for schedule in schedules:
        config = {"scheduler": schedule.scheduler, "interval": schedule.interval,
                  "frequency": schedule.frequency, "name": "lr"}
        if schedule.monitor is not None:
            config.update(monitor=schedule.monitor, strict=True)
        configs.append(config)
    return configs
