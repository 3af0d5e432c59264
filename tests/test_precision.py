"""Half-precision runs: the normalized images take the dtype of the weights."""

import math

import pytest

from experiments import cifar_mlp
from tests.checks import assert_tested_checkpoint, best_checkpoint


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
    # The figures of the best checkpoint, evaluated by hand in the same precision.
    assert_tested_checkpoint(results, best_checkpoint(tmp_path / "version_0"), image_folder,
                             precision=precision)
