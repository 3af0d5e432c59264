"""The fast ResNet18 recipes run end to end on the tiny image folder.

Not fast_dev_run (a single step): the fast94 warm-up needs a few epochs of steps; 4 epochs
of 1 step run the whole schedule, the EMA and the final test instead."""

import pytest

from experiments import RECIPES, cifar_mlp, cifar_resnet18
from tests.checks import (
    assert_results_are_those_of,
    assert_tested_checkpoint,
    best_checkpoint,
    record_runs,
)

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.mark.parametrize("recipe", ["cifar_resnet18_fast94.yaml", "cifar_resnet18_5min.yaml"])
def test_fast_recipe_runs_end_to_end(recipe, image_folder, tmp_path, monkeypatch):
    runs = record_runs(monkeypatch)
    results = cifar_resnet18.main([
        "--config", str(RECIPES.config(recipe)), "--data.data_dir", str(image_folder),
        "--data.batch_size", "16", "--model.resnet_widths", "[4,8,8,8]",
        "--trainer.max_epochs", "4", "--trainer.limit_train_batches", "1",
        "--trainer.default_root_dir", str(tmp_path), *QUIET,
    ])
    # No validation split: the final weights are tested, which with the recipe's EMA are
    # the average; its flip TTA figure is checked too.
    assert "test/acc_flip_tta" in results
    assert_results_are_those_of(results, runs[0].model, image_folder)


def test_fast52_mlp_recipe_runs_end_to_end(image_folder, tmp_path):
    results = cifar_mlp.main([
        "--config", str(RECIPES.config("cifar_mlp_fast52")), "--data.data_dir", str(image_folder),
        "--data.batch_size", "16", "--model.hidden_widths", "[8,8]",
        "--trainer.default_root_dir", str(tmp_path), *QUIET,
    ])
    accuracy = assert_tested_checkpoint(results, best_checkpoint(tmp_path / "version_0"),
                                        image_folder)
    assert accuracy >= 0.375  # chance: 0.25 (the tiny folder, 4 epochs)
