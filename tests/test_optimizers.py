"""Optimizers: every name trains, weight decay reaches the right parameters, bad values fail."""

import lightning as L
import pytest
import timm.optim
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from experiments import cifar_mlp
from src.core.errors import ConfigError
from src.modules import ImageClassifier
from src.modules.optimizers import (
    OPTIMIZERS,
    OptimizerSettings,
    make_optimizer,
    parameter_groups,
    validate_optimizer,
)

# Settings each optimizer is usually run with (lbfgs: full batch, no weight decay).
TYPICAL = {
    "sgd": dict(lr=0.1, weight_decay=5e-4),
    "adagrad": dict(lr=0.05, weight_decay=5e-4),
    "rmsprop": dict(lr=1e-3, weight_decay=5e-4, rmsprop_momentum=0.9),
    "adam": dict(lr=1e-3, weight_decay=5e-4),
    "adamw": dict(lr=1e-3, weight_decay=0.05),
    "lamb": dict(lr=1e-2, weight_decay=0.01),
    "lbfgs": dict(lr=1.0, weight_decay=0.0),
}


LIBRARY_CLASSES = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
                   "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
                   "adamw": torch.optim.AdamW, "lamb": timm.optim.Lamb,
                   "lbfgs": torch.optim.LBFGS}


def tiny_classifier(**kwargs) -> ImageClassifier:
    defaults = dict(arch="mlp", num_classes=2, in_channels=1, image_size=4, hidden_widths=(8,),
                    norm="batch", scheduler="constant")
    return ImageClassifier(**{**defaults, **kwargs})


def separable_batches(count: int = 64, batch_size: int = 64) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(count, 1, 4, 4, generator=generator)
    targets = (images.flatten(1).sum(dim=1) > 0).long()
    return DataLoader(TensorDataset(images, targets), batch_size=batch_size)


def fit(model: ImageClassifier, loader: DataLoader, **trainer_kwargs) -> None:
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, **trainer_kwargs)
    trainer.fit(model, loader)


def training_loss(model: ImageClassifier, loader: DataLoader) -> float:
    images, targets = next(iter(loader))
    model.eval()
    with torch.no_grad():
        return model.loss(model(images), targets).item()


def test_registry_holds_every_optimizer_of_the_course():
    assert set(OPTIMIZERS) == set(TYPICAL)


@pytest.mark.parametrize("name", sorted(TYPICAL))
def test_every_optimizer_builds_and_takes_training_steps(name):
    torch.manual_seed(0)
    model = tiny_classifier(optimizer=name, **TYPICAL[name])
    before = [p.detach().clone() for p in model.parameters()]
    loader = separable_batches(count=32, batch_size=16)
    fit(model, loader, max_steps=2)
    assert model.trainer.global_step == 2
    optimizer = model.trainer.optimizers[0]
    assert type(optimizer) is LIBRARY_CLASSES[name]  # the library's class, not ours
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_lbfgs_trains_full_batch_under_lightning_closure():
    torch.manual_seed(0)
    model = tiny_classifier(optimizer="lbfgs", lr=1.0, weight_decay=0.0, norm="none")
    loader = separable_batches()  # one batch: the whole (tiny) training set
    before = training_loss(model, loader)
    fit(model, loader, max_epochs=3)
    after = training_loss(model, loader)
    # 3 steps of 20 L-BFGS iterations each fit a linearly separable set almost exactly.
    assert after < 0.1 * before


def test_optimizer_settings_reach_the_torch_optimizer():
    model = tiny_classifier()
    rmsprop = make_optimizer(model, OptimizerSettings(
        optimizer="rmsprop", lr=0.01, rmsprop_alpha=0.9, rmsprop_momentum=0.5))
    assert (rmsprop.defaults["alpha"], rmsprop.defaults["momentum"]) == (0.9, 0.5)
    sgd = make_optimizer(model, OptimizerSettings(optimizer="sgd", lr=0.01, momentum=0.8,
                                                  nesterov=True))
    assert (sgd.defaults["momentum"], sgd.defaults["nesterov"]) == (0.8, True)
    lamb = make_optimizer(model, OptimizerSettings(optimizer="lamb", lr=0.01, betas=(0.8, 0.99)))
    assert lamb.defaults["betas"] == (0.8, 0.99)
    lbfgs = make_optimizer(model, OptimizerSettings(
        optimizer="lbfgs", lr=1.0, weight_decay=0.0, lbfgs_max_iter=7, lbfgs_history_size=9,
        lbfgs_line_search="none"))
    assert (lbfgs.defaults["max_iter"], lbfgs.defaults["history_size"]) == (7, 9)
    assert lbfgs.defaults["line_search_fn"] is None


# -- weight decay on biases and normalization parameters ---------------------------------


def test_by_default_every_parameter_is_decayed_in_one_group():
    model = tiny_classifier()
    optimizer = make_optimizer(model, OptimizerSettings(optimizer="sgd", lr=0.1, weight_decay=0.01))
    [group] = optimizer.param_groups
    assert group["weight_decay"] == 0.01
    assert len(group["params"]) == len(list(model.parameters()))


def test_norm_and_bias_parameters_can_be_excluded_from_weight_decay():
    model = tiny_classifier()  # MLP: Linear weights, Linear biases, BatchNorm weight/bias
    groups = parameter_groups(model, weight_decay=0.01, decay_norm_and_bias=False)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in groups[0]["params"])
    excluded = sorted(names[id(p)] for p in groups[1]["params"])
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    assert (groups[0]["weight_decay"], groups[1]["weight_decay"]) == (0.01, 0.0)
    linear_weights = sorted(f"{m}.weight" for m, module in model.named_modules()
                            if isinstance(module, torch.nn.Linear))
    norm_weights = sorted(f"{m}.weight" for m, module in model.named_modules()
                          if isinstance(module, torch.nn.BatchNorm1d))
    biases = sorted(n for n, _ in model.named_parameters() if n.endswith(".bias"))
    assert len(linear_weights) == 2 and len(norm_weights) == 1 and len(biases) == 3
    assert decayed == linear_weights
    assert excluded == sorted(norm_weights + biases)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_excluded_parameters_do_not_shrink_under_weight_decay(name):
    # With zero gradients, a step changes only what weight decay acts on.
    model = tiny_classifier()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(1.0)
            parameter.grad = torch.zeros_like(parameter)
    optimizer = make_optimizer(model, OptimizerSettings(optimizer=name, 
        lr=0.1, weight_decay=0.5, decay_norm_and_bias=False))
    optimizer.step()
    for parameter_name, parameter in model.named_parameters():
        if parameter.ndim == 2:
            assert torch.all(parameter < 1.0), parameter_name
        else:
            assert torch.all(parameter == 1.0), parameter_name


def test_frozen_parameters_stay_in_the_optimizer():
    model = tiny_classifier()
    first = next(model.parameters())
    first.requires_grad_(False)  # e.g. a frozen backbone that is unfrozen later
    groups = parameter_groups(model, weight_decay=0.01, decay_norm_and_bias=False)
    assert any(p is first for group in groups for p in group["params"])


def test_lr_monitor_names_the_two_groups(tmp_path):
    model = tiny_classifier(weight_decay=0.01, decay_norm_and_bias=False, scheduler="cosine")
    monitor = LearningRateMonitor(logging_interval="step")
    trainer = L.Trainer(max_steps=2, logger=CSVLogger(tmp_path), callbacks=[monitor],
                        log_every_n_steps=1, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0)
    trainer.fit(model, separable_batches(count=32, batch_size=16))
    assert set(monitor.lrs) == {"lr/decay", "lr/no_decay"}


# -- names and ranges --------------------------------------------------------------------


def test_unknown_optimizer_lists_the_known_names_in_one_line():
    with pytest.raises(ConfigError) as error:
        tiny_classifier(optimizer="adamax")
    message = str(error.value)
    assert message == ("unknown optimizer 'adamax'; choose one of: "
                       "adagrad, adam, adamw, lamb, lbfgs, rmsprop, sgd")


@pytest.mark.parametrize("settings, fragment", [
    (dict(lr=0.0), "lr=0.0 is out of range"),
    (dict(lr=-0.1), "lr=-0.1 is out of range"),
    (dict(weight_decay=-1e-4), "weight_decay"),
    (dict(momentum=1.0), "momentum"),
    (dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    (dict(rmsprop_alpha=0.0), "rmsprop_alpha"),
    (dict(rmsprop_momentum=-0.1), "rmsprop_momentum"),
    (dict(lbfgs_max_iter=0), "lbfgs_max_iter"),
    (dict(lbfgs_history_size=0), "lbfgs_history_size"),
    (dict(lbfgs_line_search="backtracking"), "unknown lbfgs_line_search 'backtracking'"),
])
def test_out_of_range_optimizer_settings_fail(settings, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate_optimizer(OptimizerSettings(optimizer="sgd", **{"lr": 0.1, **settings}))


def test_lbfgs_with_weight_decay_fails_with_the_fix():
    with pytest.raises(ConfigError, match="set --model.weight_decay 0"):
        tiny_classifier(optimizer="lbfgs", lr=1.0, weight_decay=5e-4)


def test_nesterov_without_momentum_fails():
    with pytest.raises(ConfigError, match="nesterov"):
        tiny_classifier(optimizer="sgd", momentum=0.0, nesterov=True)


def test_cli_has_one_way_to_choose_the_optimizer(capsys):
    # LightningCLI's own --optimizer would silently bypass the registry and the hparams.
    with pytest.raises(SystemExit) as exit_info:
        cifar_mlp.main(["--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out.splitlines()
    assert "  optimizer: adamw" in printed
    assert not any(line.startswith(("optimizer:", "lr_scheduler:")) for line in printed)
    with pytest.raises(SystemExit) as exit_info:
        cifar_mlp.main(["--optimizer", "Adam"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_lamb_scales_every_layer_update_to_lr_times_its_weight_norm(weight_decay):
    # LAMB (You et al. 2020): each tensor moves by lr * ||w|| / ||u|| * u, so one step
    # changes it by exactly lr * ||w||, whatever the gradient's scale. timm's Lamb skips
    # that trust ratio at weight decay 0 unless always_adapt=True: the step would then
    # be Adam's, whose first-step norm is about lr * sqrt(numel).
    torch.manual_seed(0)
    model = tiny_classifier(optimizer="lamb", lr=0.01, weight_decay=weight_decay)
    optimizer = make_optimizer(model, model.optimizer_settings)
    images, targets = next(iter(separable_batches()))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.loss(model(images), targets).backward()
    optimizer.step()
    checked = 0
    for name, parameter in model.named_parameters():
        norm = before[name].norm()
        if norm == 0:
            continue  # the ratio is 1 for a zero tensor (e.g. a zero-initialized bias)
        step = (parameter.detach() - before[name]).norm()
        assert step == pytest.approx(0.01 * norm.item(), rel=1e-3), name
        checked += 1
    assert checked >= 4  # both weight matrices, their biases, the norm's weight
