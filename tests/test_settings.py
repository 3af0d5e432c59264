"""Each model setting is declared once (src/core/settings.py); the signature, the
docstring, --help, the checks and docs/reference all come from that declaration."""

import inspect
import math
from dataclasses import fields
from pathlib import Path

import pytest

from experiments import cifar_mlp
from src.cli.reference_docs import stale_pages
from src.core.errors import ConfigError
from src.core.settings import check_settings, specs, unused_settings
from src.modules.classifier import SETTING_GROUPS, ImageClassifier
from src.modules.optimizers import OptimizerSettings
from src.modules.schedulers import ScheduleSettings

REPO = Path(__file__).resolve().parents[1]
DECLARED = [f for group in SETTING_GROUPS for f in fields(group)]


def test_signature_and_docstring_list_every_declared_setting_once():
    parameters = list(inspect.signature(ImageClassifier).parameters.values())
    assert [p.name for p in parameters] == [f.name for f in DECLARED]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    assert [p.default for p in parameters] == [f.default for f in DECLARED]
    args = ImageClassifier.__doc__.split("Args:")[1]
    assert all(f"    {f.name}: " in args for f in DECLARED)


def test_help_text_comes_from_the_declaration(capsys):
    with pytest.raises(SystemExit):
        cifar_mlp.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--model.momentum MOMENTUM SGD momentum. Range [0, 1). Used with optimizer sgd" in text
    assert "--model.betas" in text and "Used with optimizer adam, adamw, lamb only" in text


def test_reference_pages_are_what_the_declarations_give():
    assert stale_pages(REPO / "docs" / "reference") == []


def test_every_setting_is_recorded_in_the_hyperparameters():
    model = ImageClassifier(arch="mlp", hidden_widths=(8,), lr=0.05)
    assert set(model.hparams) == {f.name for f in DECLARED}
    assert model.hparams.lr == 0.05 and model.hparams.momentum == 0.9  # given and default
    assert model.optimizer_settings == OptimizerSettings(lr=0.05)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(ConfigError, match=r"--model.lr=(nan|inf|-inf) is not a finite number"):
        ImageClassifier(arch="mlp", hidden_widths=(8,), lr=value)
    with pytest.raises(ConfigError, match=r"--model.betas\[1\]=.* is not a finite number"):
        ImageClassifier(arch="mlp", hidden_widths=(8,), optimizer="adam", betas=(0.9, value))


@pytest.mark.parametrize(("settings", "message"), [
    ({"optimizer": "adam", "momentum": 0.5},
     "--model.momentum applies to optimizer sgd only, and optimizer is 'adam'"),
    ({"scheduler": "cosine", "onecycle_pct_start": 0.3},
     "--model.onecycle_pct_start applies to scheduler onecycle only, and scheduler is 'cosine'"),
    ({"loss": "mse", "class_weights": "auto"},
     "--model.class_weights applies to loss cross_entropy, bce only, and loss is 'mse'"),
    ({"arch": "resnet18", "hidden_widths": (8,)},
     "--model.hidden_widths applies to arch mlp only, and arch is 'resnet18'"),
    ({"norm": "batch", "norm_groups": 4},
     "--model.norm_groups applies to norm group only, and norm is 'batch'"),
])
def test_an_option_the_choice_does_not_use_is_refused(settings, message):
    with pytest.raises(ConfigError) as error:
        ImageClassifier(**{"arch": "mlp", **settings})
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_options_of_the_chosen_choice_and_defaults_are_accepted():
    ImageClassifier(arch="mlp", hidden_widths=(8,), optimizer="sgd", momentum=0.5)
    ImageClassifier(arch="mlp", hidden_widths=(8,), optimizer="adam", momentum=0.9)  # default
    check_settings(ScheduleSettings(scheduler="cyclic", cyclic_mode="triangular2"))


def test_unused_settings_names_the_options_of_other_choices():
    unused = unused_settings([OptimizerSettings], {"optimizer": "adamw", "momentum": 0.9,
                                                   "betas": (0.9, 0.99), "lr": 0.1})
    assert unused == {"momentum": 0.9}  # betas is adamw's; lr applies to every optimizer
    assert set(specs(OptimizerSettings)) >= {"momentum", "betas", "lr"}


def test_unknown_setting_names_the_closest_one():
    with pytest.raises(ConfigError,
                       match="unknown model setting 'moment'; did you mean 'momentum'"):
        ImageClassifier(arch="mlp", moment=0.5)


def test_cli_refuses_a_users_option_for_another_choice(capsys, image_folder, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        cifar_mlp.main(["--data.data_dir", str(image_folder), "--trainer.default_root_dir",
                        str(tmp_path / "runs"), "--model.optimizer", "sgd",
                        "--model.betas", "[0.8, 0.99]"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --model.betas applies to optimizer adam, adamw, lamb only, and optimizer is "
        "'sgd': remove --model.betas (or set it back to (0.9, 0.999)), or choose "
        "--model.optimizer adam")
    assert not (tmp_path / "runs").exists()


def test_cli_drops_the_recipes_options_for_a_choice_switched_by_one_flag(capsys, image_folder,
                                                                         tmp_path):
    # cifar_mlp.yaml sets onecycle_pct_start 0.2 for its onecycle schedule.
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--trainer.default_root_dir", str(tmp_path),
        "--model.hidden_widths", "[8]", "--trainer.max_epochs", "1",
        "--trainer.enable_progress_bar", "false", "--model.scheduler", "cosine"])
    assert "test/acc" in results  # trained and tested
    config = (tmp_path / "version_0" / "config.yaml").read_text()
    assert "scheduler: cosine" in config and "onecycle_pct_start: 0.25" in config
