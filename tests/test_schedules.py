"""Learning-rate schedules: the rate at every optimizer step equals its closed form.

`run_schedules` steps the schedulers the way Lightning does (per optimizer step or per
epoch, as their config says; reduce-on-plateau with the monitored metric); the tests
"through Lightning" check the rates of a real Trainer against the closed forms too,
with and without gradient accumulation.
"""

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from experiments import cifar_mlp
from src.core.errors import ConfigError
from src.modules import ImageClassifier
from src.modules.schedulers import (
    SCHEDULERS,
    RunLength,
    ScheduleSettings,
    lightning_scheduler_configs,
    make_scheduler,
    validate_scheduler,
)
from tests.checks import assert_tested_checkpoint, best_checkpoint

LR = 0.1
STEPS_PER_EPOCH = 5
EPOCHS = 8
TOTAL = STEPS_PER_EPOCH * EPOCHS
RUN = RunLength(total_steps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH)


def sgd(lr: float = LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def run_schedules(name: str, run: RunLength = RUN, metrics: list[float] | None = None,
                  **settings) -> list[float]:
    """The learning rate used by each optimizer step of the run."""
    optimizer = sgd()
    configs = lightning_scheduler_configs(
        make_scheduler(optimizer, ScheduleSettings(scheduler=name, **settings), run))
    rates = []
    for step in range(run.total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        for config in configs:
            if config["interval"] == "step":
                config["scheduler"].step()
        if (step + 1) % run.steps_per_epoch == 0:
            epoch = (step + 1) // run.steps_per_epoch
            for config in configs:
                if config["interval"] == "epoch" and epoch % config["frequency"] == 0:
                    if "monitor" in config:
                        config["scheduler"].step(metrics[epoch - 1])
                    else:
                        config["scheduler"].step()
    return rates


def epoch_of(step: int) -> int:
    return step // STEPS_PER_EPOCH


def assert_rates(actual: list[float], expected: list[float]) -> None:
    assert len(actual) == len(expected)
    for step, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a == pytest.approx(e, rel=1e-6, abs=1e-12), f"step {step}: {a} != {e}"


def onecycle_closed_form(t: int, total: int, peak: float, pct_start: float) -> float:
    # torch's OneCycleLR (two phases, cosine annealing, div_factor 25, final_div 1e4)
    start, end = peak / 25, peak / 25 / 1e4
    rise_end = pct_start * total - 1
    if t <= rise_end:
        low, high, pct = start, peak, t / rise_end
    else:
        low, high, pct = peak, end, (t - rise_end) / (total - 1 - rise_end)
    return high + (low - high) / 2 * (1 + math.cos(math.pi * pct))


# -- every schedule, closed form ---------------------------------------------------------


def test_constant_schedule_has_no_scheduler_and_keeps_the_rate():
    assert make_scheduler(sgd(), ScheduleSettings(scheduler="constant"), RUN) == []
    assert run_schedules("constant") == [LR] * TOTAL


def test_step_drops_every_step_size_epochs():
    rates = run_schedules("step", step_size_epochs=3, step_gamma=0.5)
    assert_rates(rates, [LR * 0.5 ** (epoch_of(t) // 3) for t in range(TOTAL)])


def test_multistep_drops_at_milestone_epochs():
    rates = run_schedules("multistep", milestone_epochs=(2, 5), step_gamma=0.1)
    expected = [LR * 0.1 ** sum(epoch_of(t) >= m for m in (2, 5)) for t in range(TOTAL)]
    assert_rates(rates, expected)


def test_exponential_multiplies_by_gamma_per_epoch():
    rates = run_schedules("exponential", exponential_gamma=0.98)
    assert_rates(rates, [LR * 0.98 ** epoch_of(t) for t in range(TOTAL)])


def test_inverse_time_decays_per_optimizer_step():
    rates = run_schedules("inverse_time", inverse_time_decay=0.2)
    assert_rates(rates, [LR / (1 + 0.2 * t) for t in range(TOTAL)])


def test_linear_then_constant_decays_until_decay_epochs():
    rates = run_schedules("linear_then_constant", decay_epochs=3, linear_end_factor=0.1)
    expected = [LR * (1 + (0.1 - 1) * min(epoch_of(t), 3) / 3) for t in range(TOTAL)]
    assert_rates(rates, expected)
    assert rates[-1] == pytest.approx(0.1 * LR)


def test_linear_decays_to_end_factor_over_the_run():
    rates = run_schedules("linear", linear_end_factor=0.05)
    assert_rates(rates, [LR * (1 + (0.05 - 1) * t / TOTAL) for t in range(TOTAL)])


def test_cosine_anneals_to_min_lr_over_the_run():
    rates = run_schedules("cosine", min_lr=0.001)
    expected = [0.001 + (LR - 0.001) * (1 + math.cos(math.pi * t / TOTAL)) / 2
                for t in range(TOTAL)]
    assert_rates(rates, expected)


def test_cosine_restarts_periods_grow_by_t_mult():
    rates = run_schedules("cosine_restarts", restart_epochs=1, restart_mult=2, min_lr=0.0)
    # periods of 1, 2, 4 epochs: restarts at steps 5 and 15 (and 35)
    expected = []
    for t in range(TOTAL):
        start, period = 0, STEPS_PER_EPOCH
        while t >= start + period:
            start, period = start + period, period * 2
        expected.append(LR * (1 + math.cos(math.pi * (t - start) / period)) / 2)
    assert_rates(rates, expected)
    assert rates[5] == pytest.approx(LR) and rates[15] == pytest.approx(LR)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_modes(mode):
    base, half = 0.01, STEPS_PER_EPOCH  # cyclic_step_epochs=1
    rates = run_schedules("cyclic", cyclic_mode=mode, cyclic_base_lr=base,
                          cyclic_step_epochs=1.0, cyclic_gamma=0.9)
    expected = []
    for t in range(TOTAL):
        cycle = math.floor(1 + t / (2 * half))
        height = max(0.0, 1 - abs(t / half - 2 * cycle + 1))
        scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1),
                 "exp_range": 0.9 ** t}[mode]
        expected.append(base + (LR - base) * height * scale)
    assert_rates(rates, expected)


def test_cyclic_leaves_momentum_alone():
    optimizer = sgd()
    make_scheduler(optimizer, ScheduleSettings(scheduler="cyclic", cyclic_base_lr=0.01), RUN)
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_onecycle_matches_torch_closed_form():
    rates = run_schedules("onecycle", onecycle_pct_start=0.25)
    assert_rates(rates, [onecycle_closed_form(t, TOTAL, LR, 0.25) for t in range(TOTAL)])
    assert max(rates) == pytest.approx(LR)


def test_onecycle_cycles_momentum_only_where_the_optimizer_has_it():
    with_momentum = sgd()
    make_scheduler(with_momentum, ScheduleSettings(scheduler="onecycle"), RUN)
    assert with_momentum.param_groups[0]["momentum"] == pytest.approx(0.95)
    plain = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR, momentum=0.0)
    make_scheduler(plain, ScheduleSettings(scheduler="onecycle"), RUN)
    assert plain.param_groups[0]["momentum"] == 0.0  # not switched on behind the user's back


def test_reduce_on_plateau_min_mode_reacts_to_val_loss():
    losses = [1.0, 0.8, 0.85, 0.9, 0.7, 0.75, 0.76, 0.77]  # no improvement at epochs 3-4, 6-7
    rates = run_schedules("reduce_on_plateau", metrics=losses, plateau_monitor="val/loss",
                          plateau_patience=1, plateau_factor=0.5)
    per_epoch = [rates[e * STEPS_PER_EPOCH] for e in range(EPOCHS)]
    # the 2nd bad epoch in a row (epoch index 3, then 6) halves the rate for the next epoch
    assert per_epoch == pytest.approx([LR, LR, LR, LR, LR / 2, LR / 2, LR / 2, LR / 4])


def test_reduce_on_plateau_max_mode_for_val_acc():
    rising = [0.1 * (e + 1) for e in range(EPOCHS)]
    assert run_schedules("reduce_on_plateau", metrics=rising, plateau_monitor="val/acc",
                         plateau_patience=0) == [LR] * TOTAL
    falling = [1.0 - 0.1 * e for e in range(EPOCHS)]
    rates = run_schedules("reduce_on_plateau", metrics=falling, plateau_monitor="val/acc",
                          plateau_patience=0, plateau_factor=0.5)
    assert rates[STEPS_PER_EPOCH * 2] == pytest.approx(LR / 2)  # one bad epoch: halved


def test_reduce_on_plateau_config_monitors_the_metric_once_per_validation():
    run = RunLength(total_steps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH, val_every_n_epochs=2)
    settings = ScheduleSettings(scheduler="reduce_on_plateau", plateau_monitor="val/acc")
    [config] = lightning_scheduler_configs(make_scheduler(sgd(), settings, run))
    assert config["monitor"] == "val/acc" and config["scheduler"].mode == "max"
    assert config["interval"] == "epoch" and config["frequency"] == 2


def test_reduce_on_plateau_without_validation_set_fails_clearly():
    run = RunLength(total_steps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH, has_validation=False)
    with pytest.raises(ConfigError, match="no validation set"):
        make_scheduler(sgd(), ScheduleSettings(scheduler="reduce_on_plateau"), run)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_schedule_steps_per_epoch_or_per_step_by_definition(name):
    schedules = make_scheduler(sgd(), ScheduleSettings(scheduler=name, cyclic_base_lr=0.01), RUN)
    epoch_wise = {"step", "multistep", "exponential", "linear_then_constant",
                  "reduce_on_plateau"}
    assert [s.interval for s in schedules] == ([] if name == "constant" else
                                               ["epoch" if name in epoch_wise else "step"])


# -- warm-up in front of any schedule ----------------------------------------------------

WARMUP = 2 * STEPS_PER_EPOCH
START = 0.01


def ramp(t: int) -> float:
    return START + (1 - START) * t / WARMUP if t < WARMUP else 1.0


def test_warmup_then_cosine_closed_form():
    rates = run_schedules("cosine", warmup_steps=WARMUP, warmup_start_factor=START, min_lr=0.0)
    rest = TOTAL - WARMUP
    expected = [LR * ramp(t) if t < WARMUP else
                LR * (1 + math.cos(math.pi * (t - WARMUP) / rest)) / 2 for t in range(TOTAL)]
    assert_rates(rates, expected)


def test_warmup_epochs_then_step_closed_form():
    rates = run_schedules("step", warmup_epochs=2, warmup_start_factor=START,
                          step_size_epochs=3, step_gamma=0.5)
    # epoch-wise schedules keep counting epochs from the start; the ramp multiplies them
    assert_rates(rates, [LR * ramp(t) * 0.5 ** (epoch_of(t) // 3) for t in range(TOTAL)])


def test_warmup_then_constant():
    rates = run_schedules("constant", warmup_steps=WARMUP, warmup_start_factor=START)
    assert_rates(rates, [LR * ramp(t) for t in range(TOTAL)])


def test_warmup_then_onecycle_ramps_to_its_first_rate():
    rates = run_schedules("onecycle", warmup_steps=WARMUP, warmup_start_factor=START)
    rest = TOTAL - WARMUP
    expected = [LR / 25 * ramp(t) if t < WARMUP else
                onecycle_closed_form(t - WARMUP, rest, LR, 0.25) for t in range(TOTAL)]
    assert_rates(rates, expected)


def test_warmup_then_reduce_on_plateau():
    losses = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0]
    rates = run_schedules("reduce_on_plateau", metrics=losses, warmup_steps=WARMUP,
                          warmup_start_factor=START, plateau_patience=1, plateau_factor=0.5)
    expected = [LR * ramp(t) * (0.5 if epoch_of(t) >= 4 else 1.0) * (0.5 if epoch_of(t) >= 6
                                                                     else 1.0)
                for t in range(TOTAL)]
    assert_rates(rates, expected)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_warmup_goes_in_front_of_every_schedule(name):
    metrics = [1.0 - 0.01 * e for e in range(EPOCHS)]
    settings = dict(cyclic_base_lr=0.01, step_size_epochs=3, milestone_epochs=(3, 5),
                    decay_epochs=4, restart_epochs=1)
    plain = run_schedules(name, metrics=metrics, **settings)
    warm = run_schedules(name, metrics=metrics, warmup_steps=WARMUP, warmup_start_factor=START,
                         **settings)
    if name in {"step", "multistep", "exponential", "linear_then_constant",
                "reduce_on_plateau", "constant"}:
        expected = [rate * ramp(t) for t, rate in enumerate(plain)]
    else:
        # step-wise: ramp up to the schedule's first rate, then the schedule over the rest
        shifted = run_schedules(name, run=RunLength(TOTAL - WARMUP, STEPS_PER_EPOCH),
                                metrics=metrics, **settings)
        expected = [shifted[0] * ramp(t) for t in range(WARMUP)] + shifted
    assert_rates(warm, expected)


def test_warmup_longer_than_the_run_fails():
    with pytest.raises(ConfigError, match="does not fit"):
        make_scheduler(sgd(), ScheduleSettings(scheduler="cosine", warmup_steps=TOTAL + 1), RUN)


# -- names and ranges --------------------------------------------------------------------


def test_unknown_scheduler_lists_the_known_names_in_one_line():
    with pytest.raises(ConfigError) as error:
        validate_scheduler(ScheduleSettings(scheduler="cosine_annealing"), LR)
    message = str(error.value)
    assert "\n" not in message and "unknown scheduler 'cosine_annealing'" in message
    assert ", ".join(sorted(SCHEDULERS)) in message


@pytest.mark.parametrize("name, settings, fragment", [
    ("cosine", dict(warmup_epochs=-1), "warmup_epochs"),
    ("cosine", dict(warmup_epochs=1, warmup_steps=10), "not both"),
    ("cosine", dict(warmup_start_factor=0.0), "warmup_start_factor"),
    ("step", dict(step_size_epochs=0), "step_size_epochs"),
    ("step", dict(step_gamma=0.0), "step_gamma"),
    ("multistep", dict(milestone_epochs=(5, 3)), "milestone_epochs"),
    ("multistep", dict(milestone_epochs=()), "milestone_epochs"),
    ("exponential", dict(exponential_gamma=1.5), "exponential_gamma"),
    ("inverse_time", dict(inverse_time_decay=-0.1), "inverse_time_decay"),
    ("linear", dict(linear_end_factor=1.5), "linear_end_factor"),
    ("linear_then_constant", dict(decay_epochs=0), "decay_epochs"),
    ("cosine", dict(min_lr=1.0), "min_lr"),
    ("cosine_restarts", dict(restart_mult=0), "restart_mult"),
    ("cyclic", dict(cyclic_mode="sawtooth"), "unknown cyclic_mode 'sawtooth'"),
    ("cyclic", dict(cyclic_base_lr=LR), "cyclic_base_lr"),
    ("cyclic", dict(cyclic_step_epochs=0.0), "cyclic_step_epochs"),
    ("onecycle", dict(onecycle_pct_start=1.0), "onecycle_pct_start"),
    ("reduce_on_plateau", dict(plateau_monitor="train/acc"), "val/acc, val/loss"),
    ("reduce_on_plateau", dict(plateau_factor=1.0), "plateau_factor"),
])
def test_out_of_range_schedule_settings_fail(name, settings, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("/", ".")):
        validate_scheduler(ScheduleSettings(scheduler=name, **settings), LR)


def test_classifier_validates_schedule_in_init():
    with pytest.raises(ConfigError, match="unknown scheduler"):
        ImageClassifier(arch="mlp", hidden_widths=(8,), scheduler="nope")
    with pytest.raises(ConfigError, match="cyclic_base_lr"):
        ImageClassifier(arch="mlp", hidden_widths=(8,), scheduler="cyclic", lr=1e-4)


# -- through Lightning -------------------------------------------------------------------


class RecordRates(Callback):
    def __init__(self):
        self.rates = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def tiny_loaders(batches: int = STEPS_PER_EPOCH, batch_size: int = 8):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batches * batch_size, 3, 4, 4, generator=generator)
    targets = torch.randint(0, 2, (len(images),), generator=generator)
    data = TensorDataset(images, targets)
    return DataLoader(data, batch_size=batch_size), DataLoader(data, batch_size=batch_size)


def _restarts_after_warmup(t: int) -> float:
    # 1 epoch (5 steps) of warm-up to LR, then periods of 1 and 2 epochs: 5, 10 steps.
    if t < STEPS_PER_EPOCH:
        return LR * (START + (1 - START) * t / STEPS_PER_EPOCH)
    t -= STEPS_PER_EPOCH
    start, period = (0, STEPS_PER_EPOCH) if t < STEPS_PER_EPOCH else (STEPS_PER_EPOCH,
                                                                      2 * STEPS_PER_EPOCH)
    return LR * (1 + math.cos(math.pi * (t - start) / period)) / 2


# The rate of optimizer step t of the 3-epoch runs below, written out.
LIGHTNING_CLOSED_FORMS = {
    "cosine_restarts": _restarts_after_warmup,
    # drops by 0.5 at epochs 1 and 2; a 3-step ramp multiplies the first steps
    "multistep": lambda t: (LR * 0.5 ** sum(epoch_of(t) >= m for m in (1, 2))
                            * (START + (1 - START) * min(t, 3) / 3)),
}


@pytest.mark.parametrize("name, settings", [
    ("cosine_restarts", dict(restart_epochs=1, restart_mult=2, warmup_epochs=1)),
    ("multistep", dict(milestone_epochs=(1, 2), step_gamma=0.5, warmup_steps=3)),
    ("reduce_on_plateau", dict(plateau_monitor="val/acc", plateau_patience=0,
                               plateau_factor=0.5)),
])
def test_lightning_steps_schedules_at_their_closed_form_rates(name, settings, tmp_path):
    epochs = 3
    model = ImageClassifier(arch="mlp", num_classes=2, in_channels=3, image_size=4,
                            hidden_widths=(8,), optimizer="sgd", lr=LR, nesterov=False,
                            scheduler=name, warmup_start_factor=START, **settings)
    recorder = RecordRates()
    trainer = L.Trainer(max_epochs=epochs, logger=CSVLogger(tmp_path), log_every_n_steps=1,
                        callbacks=[recorder, LearningRateMonitor(logging_interval="step")],
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    train, val = tiny_loaders()
    trainer.fit(model, train, val)
    assert len(recorder.rates) == epochs * STEPS_PER_EPOCH
    if name == "reduce_on_plateau":
        # the rate changes only at epoch ends, and only when val/acc failed to improve
        per_epoch = [recorder.rates[e * STEPS_PER_EPOCH:(e + 1) * STEPS_PER_EPOCH]
                     for e in range(epochs)]
        assert all(len(set(rates)) == 1 for rates in per_epoch)
        assert set(recorder.rates) <= {LR, LR / 2, LR / 4}
    else:
        expected = [LIGHTNING_CLOSED_FORMS[name](t) for t in range(epochs * STEPS_PER_EPOCH)]
        assert_rates(recorder.rates, expected)
    # the LR monitor logs one learning rate per step, under one name
    trainer.logger.save()
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [key for key in rows[0] if key.startswith("lr")] == ["lr"]
    assert_rates([float(row["lr"]) for row in rows if row["lr"]], recorder.rates)


class RecordOptimizerStepRates(Callback):
    """The learning rate of every optimizer step (once per step, after accumulation)."""

    def __init__(self):
        self.rates = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.rates.append(optimizer.param_groups[0]["lr"])


# 5 batches per epoch, gradients accumulated over 2: Lightning steps the optimizer after
# batches 2, 4 and 5 (the last, partial group), so an epoch is 3 optimizer steps.
ACCUMULATE, BATCHES, STEPS, ACC_EPOCHS = 2, 5, 3, 3


def triangle(t: int, half: int, low: float, high: float) -> float:
    """Smith's triangular cycle: low at t = 0, high at t = half, low again at 2 half."""
    return low + (high - low) * max(0.0, 1 - abs(t / half - 2 * math.floor(1 + t / (2 * half)) + 1))


def cosine(t: int, period: int) -> float:
    return LR * (1 + math.cos(math.pi * t / period)) / 2


def ramp_over(t: int, length: int) -> float:
    return START + (1 - START) * t / length


ACCUMULATION_CASES = {
    # warm-up of 1 epoch = 3 optimizer steps (not 5 batches), then the constant rate
    "warmup_epochs": (dict(scheduler="constant", warmup_epochs=1),
                      lambda t: LR * ramp_over(t, STEPS) if t < STEPS else LR),
    # 4 optimizer steps of warm-up, then cosine over the remaining 9 - 4 steps
    "warmup_steps": (dict(scheduler="cosine", warmup_steps=4, min_lr=0.0),
                     lambda t: LR * ramp_over(t, 4) if t < 4 else cosine(t - 4, 5)),
    # periods of 1 and 2 epochs: 3 then 6 optimizer steps
    "cosine_restarts": (dict(scheduler="cosine_restarts", restart_epochs=1, restart_mult=2,
                             min_lr=0.0),
                        lambda t: cosine(t, STEPS) if t < STEPS else cosine(t - STEPS, 2 * STEPS)),
    # half a cycle = 1 epoch = 3 optimizer steps
    "cyclic": (dict(scheduler="cyclic", cyclic_step_epochs=1.0, cyclic_base_lr=0.01),
               lambda t: triangle(t, STEPS, 0.01, LR)),
}


@pytest.mark.parametrize("case", sorted(ACCUMULATION_CASES))
def test_schedule_lengths_count_optimizer_steps_under_gradient_accumulation(case, tmp_path):
    settings, closed_form = ACCUMULATION_CASES[case]
    model = ImageClassifier(arch="mlp", num_classes=2, in_channels=3, image_size=4,
                            hidden_widths=(8,), optimizer="sgd", lr=LR, nesterov=False,
                            warmup_start_factor=START, **settings)
    recorder = RecordOptimizerStepRates()
    trainer = L.Trainer(max_epochs=ACC_EPOCHS, accumulate_grad_batches=ACCUMULATE,
                        callbacks=[recorder], limit_val_batches=0, logger=False,
                        default_root_dir=tmp_path, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    train, _ = tiny_loaders(batches=BATCHES)
    trainer.fit(model, train)
    assert trainer.global_step == len(recorder.rates) == ACC_EPOCHS * STEPS
    assert_rates(recorder.rates, [closed_form(t) for t in range(ACC_EPOCHS * STEPS)])


def test_cli_runs_a_warmup_restart_schedule(image_folder, tmp_path, capsys):
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[16]",
        "--model.scheduler", "cosine_restarts", "--model.warmup_epochs", "1",
        "--model.restart_epochs", "1", "--trainer.log_every_n_steps", "1",
    ])
    run = tmp_path / "runs" / "version_0"
    accuracy = assert_tested_checkpoint(results, best_checkpoint(run), image_folder)
    assert accuracy >= 0.75  # chance: 0.25
    with open(run / "metrics.csv") as file:
        rates = [float(row["lr"]) for row in csv.DictReader(file) if row["lr"]]
    peak = 2e-3  # the recipe's lr (experiments/configs/cifar_mlp.yaml)
    assert rates[0] == pytest.approx(0.01 * peak)  # warm-up from warmup_start_factor x lr
    assert max(rates) == pytest.approx(peak)  # reached at the end of warm-up and restarts
    assert rates.index(max(rates)) > 0


def test_cli_rejects_an_unknown_scheduler_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cifar_mlp.main(["--model.scheduler", "warmup_cosine",
                        "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: unknown scheduler 'warmup_cosine'; choose one of: ")
    assert "\n" not in error
    assert not (tmp_path / "runs").exists()


def test_print_config_shows_optimizer_and_schedule_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cifar_mlp.main(["--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for option in ("decay_norm_and_bias:", "rmsprop_alpha:", "lbfgs_max_iter:",
                   "warmup_epochs:", "warmup_steps:", "milestone_epochs:",
                   "exponential_gamma:", "inverse_time_decay:", "restart_epochs:",
                   "cyclic_mode:", "plateau_monitor:", "decay_epochs:"):
        assert option in printed
