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
from src.modules.optimizers import uses_momentum

CYCLIC_MODES: dict[str, str] = {name: name for name in ("triangular", "triangular2", "exp_range")}
# Metrics reduce_on_plateau can watch, and whether lower or higher is better.
PLATEAU_MONITORS: dict[str, str] = {"val/loss": "min", "val/acc": "max"}


@dataclass(frozen=True)
class ScheduleSettings:
    warmup_epochs: int = 0
    warmup_steps: int = 0
    warmup_start_factor: float = 0.01
    onecycle_pct_start: float = 0.25  # fraction of the run spent increasing the rate
    step_size_epochs: int = 30
    step_gamma: float = 0.1  # factor of each drop (step, multistep)
    milestone_epochs: tuple[int, ...] = (30, 60, 80)
    exponential_gamma: float = 0.98  # factor per epoch
    inverse_time_decay: float = 1e-3  # per optimizer step
    linear_end_factor: float = 0.01
    decay_epochs: int = 10  # linear_then_constant: epochs of decay
    min_lr: float = 0.0  # cosine, cosine_restarts, reduce_on_plateau
    restart_epochs: int = 10  # T_0 of cosine_restarts, in epochs
    restart_mult: int = 1  # T_mult of cosine_restarts
    cyclic_mode: str = "triangular"
    cyclic_base_lr: float = 1e-4
    cyclic_step_epochs: float = 2.0  # half a cycle
    cyclic_gamma: float = 0.9995  # exp_range: amplitude x gamma per optimizer step
    plateau_monitor: str = "val/loss"
    plateau_factor: float = 0.1
    plateau_patience: int = 3  # validations without improvement before a drop


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


ScheduleBuilder = Callable[[Optimizer, ScheduleSettings, RunLength], Schedule | None]


def _constant(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> None:
    return None


# -- per epoch ---------------------------------------------------------------------------


def _step(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
    return Schedule(lr_scheduler.StepLR(optimizer, step_size=s.step_size_epochs,
                                        gamma=s.step_gamma), "epoch")


def _multistep(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
    return Schedule(lr_scheduler.MultiStepLR(optimizer, milestones=list(s.milestone_epochs),
                                             gamma=s.step_gamma), "epoch")


def _exponential(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
    return Schedule(lr_scheduler.ExponentialLR(optimizer, gamma=s.exponential_gamma), "epoch")


def _linear_then_constant(optimizer: Optimizer, s: ScheduleSettings,
                          run: RunLength) -> Schedule:
    # Linear decay until epoch `decay_epochs`, then constant (Goodfellow et al., Deep
    # Learning, sec. 8.3.1); LinearLR keeps its end value after total_iters.
    return Schedule(lr_scheduler.LinearLR(optimizer, start_factor=1.0,
                                          end_factor=s.linear_end_factor,
                                          total_iters=s.decay_epochs), "epoch")


def _reduce_on_plateau(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
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


def _inverse_time(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
    # lr0 / (1 + decay * step): no torch class has it, hence LambdaLR.
    decay = s.inverse_time_decay
    return Schedule(lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + decay * step)),
                    "step")


def _linear(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
    return Schedule(lr_scheduler.LinearLR(optimizer, start_factor=1.0,
                                          end_factor=s.linear_end_factor,
                                          total_iters=run.total_steps), "step")


def _cosine(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
    # Stepped per batch so the decay is smooth even for runs of a few epochs.
    return Schedule(lr_scheduler.CosineAnnealingLR(optimizer, T_max=run.total_steps,
                                                   eta_min=s.min_lr), "step")


def _cosine_restarts(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
    # SGDR counts T_0 in epochs but anneals within them; T_0 in optimizer steps does both.
    first_period = int(s.restart_epochs) * run.steps_per_epoch
    return Schedule(lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=first_period, T_mult=int(s.restart_mult), eta_min=s.min_lr), "step")


def _cyclic(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
    # Smith's cyclical learning rates between cyclic_base_lr and lr; momentum is left
    # alone (cycling it came later, with one-cycle) so every optimizer can use it.
    half_cycle = max(1, round(s.cyclic_step_epochs * run.steps_per_epoch))
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return Schedule(lr_scheduler.CyclicLR(
        optimizer, base_lr=s.cyclic_base_lr, max_lr=max_lr, step_size_up=half_cycle,
        mode=lookup(CYCLIC_MODES, s.cyclic_mode, "cyclic_mode"), gamma=s.cyclic_gamma,
        cycle_momentum=False), "step")


def _onecycle(optimizer: Optimizer, s: ScheduleSettings, run: RunLength) -> Schedule:
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


def validate_scheduler(name: str, s: ScheduleSettings, lr: float) -> None:
    """Fail early (before any training or file output) on a bad name or value."""
    lookup(SCHEDULERS, name, "scheduler")
    key = name.lower()
    check_range("warmup_epochs", s.warmup_epochs, 0)
    check_range("warmup_steps", s.warmup_steps, 0)
    if s.warmup_epochs > 0 and s.warmup_steps > 0:
        raise ConfigError("set warmup_epochs or warmup_steps, not both "
                          f"(got {s.warmup_epochs} and {s.warmup_steps})")
    check_range("warmup_start_factor", s.warmup_start_factor, 0.0, 1.0, low_inclusive=False)
    check_range("onecycle_pct_start", s.onecycle_pct_start, 0.0, 1.0, low_inclusive=False,
                high_inclusive=False)
    check_range("step_size_epochs", s.step_size_epochs, 1)
    check_range("step_gamma", s.step_gamma, 0.0, 1.0, low_inclusive=False)
    milestones = list(s.milestone_epochs)
    increasing = all(a < b for a, b in zip(milestones, milestones[1:], strict=False))
    if not milestones or milestones[0] < 1 or not increasing:
        raise ConfigError(f"milestone_epochs={milestones!r} must be increasing epochs >= 1, "
                          "e.g. [30, 60, 80]")
    check_range("exponential_gamma", s.exponential_gamma, 0.0, 1.0, low_inclusive=False)
    check_range("inverse_time_decay", s.inverse_time_decay, 0.0)
    check_range("linear_end_factor", s.linear_end_factor, 0.0, 1.0)
    check_range("decay_epochs", s.decay_epochs, 1)
    # A final rate above the peak would make these schedules climb instead of decay.
    uses_min_lr = key in ("cosine", "cosine_restarts", "reduce_on_plateau")
    check_range("min_lr", s.min_lr, 0.0, lr if uses_min_lr else None)
    check_range("restart_epochs", s.restart_epochs, 1)
    check_range("restart_mult", s.restart_mult, 1)
    lookup(CYCLIC_MODES, s.cyclic_mode, "cyclic_mode")
    check_range("cyclic_base_lr", s.cyclic_base_lr, 0.0, lr if key == "cyclic" else None,
                low_inclusive=False, high_inclusive=False)
    check_range("cyclic_step_epochs", s.cyclic_step_epochs, 0.0, low_inclusive=False)
    check_range("cyclic_gamma", s.cyclic_gamma, 0.0, 1.0, low_inclusive=False)
    lookup(PLATEAU_MONITORS, s.plateau_monitor, "plateau_monitor")
    check_range("plateau_factor", s.plateau_factor, 0.0, 1.0, low_inclusive=False,
                high_inclusive=False)
    check_range("plateau_patience", s.plateau_patience, 0)


def warmup_length(s: ScheduleSettings, run: RunLength) -> int:
    """Warm-up length in optimizer steps (0: no warm-up)."""
    return s.warmup_steps if s.warmup_steps > 0 else s.warmup_epochs * run.steps_per_epoch


def make_scheduler(name: str, optimizer: Optimizer, settings: ScheduleSettings,
                   run: RunLength) -> list[Schedule]:
    """The schedules Lightning should step for this optimizer (none: constant rate)."""
    builder = lookup(SCHEDULERS, name, "scheduler")
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
