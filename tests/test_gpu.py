"""The GPU-only paths, where a CUDA GPU exists (`python -m pytest -m gpu`); skipped
elsewhere. The CPU suite covers their logic with the CUDA checks monkeypatched."""

import pytest
import torch

from experiments import benchmark, cifar_resnet18
from src.runs.preflight import default_precision
from tests.checks import assert_tested_checkpoint, best_checkpoint

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TINY_RESNET = ["--model.resnet_widths", "[8,16,16,16]", "--data.batch_size", "32",
               "--trainer.enable_progress_bar", "false"]


def test_bf16_mixed_is_the_default_precision_on_gpus_that_support_it():
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) \
        else "32-true"
    assert default_precision("auto") == expected


def test_resnet18_trains_on_the_gpu_with_channels_last_and_tests_its_best_checkpoint(
        image_folder, tmp_path):
    results = cifar_resnet18.main([
        "--data.data_dir", str(image_folder), "--trainer.max_epochs", "3",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "gpu",
        "--model.channels_last", "true", *TINY_RESNET])
    accuracy = assert_tested_checkpoint(results, best_checkpoint(tmp_path / "version_0"),
                                        image_folder)
    assert accuracy > 0.25  # above chance on the 4 tiny classes


def test_gpu_suite_refuses_the_tiny_folder_in_one_line(image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        benchmark.main(["--gpu_suite", "--data.data_dir", str(image_folder),
                        "--out_dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert "the GPU suite measures the whole CIFAR-10" in capsys.readouterr().err
