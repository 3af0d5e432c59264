"""Half-precision runs: the normalized images take the dtype of the weights."""

import math

import pytest

from experiments import cifar_mlp


@pytest.mark.parametrize("precision", ["bf16-true", "bf16-mixed"])
def test_bf16_run_on_cpu(image_folder, tmp_path, precision):
    # bf16-true used to fail: images normalized to float32 after Lightning's input cast
    # met bfloat16 weights ("mat1 and mat2 must have the same dtype").
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[8]",
        "--data.batch_size", "16", "--trainer.accelerator", "cpu",
        "--trainer.precision", precision,
    ])
    assert math.isfinite(results["test/loss"])
    assert 0.0 <= results["test/acc"] <= 1.0
