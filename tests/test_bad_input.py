"""Bad input ends a run with one line on stderr, exit status 2, no traceback, no files.

A few cases run the real command in a subprocess (what a user sees); the rest call the
entry point in-process (`cifar_mlp.main` raising SystemExit(2)) to keep the suite fast.
"""

import os
import shutil

import lightning as L
import numpy as np
import pytest
import torch
import torchvision
from conftest import write_image_folder
from entry_points import error_lines, run_entry_point
from PIL import Image

from experiments import cifar_mlp
from src.core.errors import ConfigError
from src.datamodules.cifar10 import CIFAR10DataModule
from src.modules import ImageClassifier
from src.runs.checkpoints import CheckpointError, read_checkpoint
from src.runs.preflight import check_accelerator


def run_args(data_dir, out_dir, *flags: str) -> list[str]:
    # A tiny MLP, unless the flags choose another architecture.
    tiny = [] if "--model.arch" in flags else ["--model.hidden_widths", "[8]"]
    return ["--data.data_dir", str(data_dir), "--trainer.default_root_dir", str(out_dir),
            "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
            *tiny, "--data.batch_size", "16", *flags]


def fails_with_one_line(capsys, data_dir, out_dir, *flags: str) -> str:
    """Run in-process, expect exit 2 with a single error line and no output folder."""
    with pytest.raises(SystemExit) as exit_info:
        cifar_mlp.main(run_args(data_dir, out_dir, *flags))
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert not out_dir.exists(), f"{out_dir} was written: {list(out_dir.rglob('*'))}"
    return lines[0]


@pytest.fixture
def small_folder(tmp_path):
    """A private 4-class folder (6 train, 2 test images per class) that tests may damage."""
    return write_image_folder(tmp_path / "images", train_per_class=6, test_per_class=2)


# -- unknown names and out-of-range numbers --------------------------------------------

@pytest.mark.parametrize(("flags", "expected"), [
    (["--model.arch", "vgg11"], "unknown arch 'vgg11'; choose one of: mlp, resnet18, timm"),
    (["--model.norm", "batchnorm"], "unknown norm 'batchnorm'; choose one of: batch, group"),
    (["--model.arch", "resnet18", "--model.norm", "weight"], "unknown norm 'weight'"),
    (["--model.act", "relu7"], "unknown act 'relu7'"),
    (["--model.optimizer", "adamx"], "unknown optimizer 'adamx'"),
    (["--model.scheduler", "cosinus"], "unknown scheduler 'cosinus'"),
    (["--data.augment", "[flip, cutout9]"], "unknown augmentation 'cutout9'"),
    (["--data.source", "hdf5"], "unknown data source 'hdf5'"),
    (["--wandb.enabled", "true", "--wandb.mode", "sometimes"], "unknown W&B mode 'sometimes'"),
])
def test_unknown_name(capsys, image_folder, tmp_path, flags, expected):
    line = fails_with_one_line(capsys, image_folder, tmp_path / "run", *flags)
    assert expected in line


@pytest.mark.parametrize(("flags", "expected"), [
    (["--model.lr", "0"], "lr=0.0 is out of range; it must lie in (0.0, inf]"),
    (["--model.lr", "-0.1"], "lr=-0.1 is out of range"),
    (["--data.batch_size", "0"], "batch_size=0 is out of range; it must lie in [1, inf]"),
    (["--data.eval_batch_size", "-2"], "eval_batch_size=-2 is out of range"),
    (["--data.val_fraction", "0"], "val_fraction=0.0 is out of range; it must lie in (0.0, 1.0)"),
    (["--data.val_fraction", "1"], "val_fraction=1.0 is out of range"),
    (["--data.val_fraction", "1.5"], "val_fraction=1.5 is out of range"),
    (["--model.dropout", "1"], "dropout=1.0 is out of range; it must lie in [0.0, 1.0)"),
    (["--model.dropout", "-0.1"], "dropout=-0.1 is out of range"),
    (["--model.norm", "group", "--model.norm_groups", "3"], "norm_groups=3 does not divide 8"),
    (["--model.arch", "resnet18", "--model.resnet_widths", "[8, 16, 16, 16]",
      "--model.norm", "group", "--model.norm_groups", "16"], "norm_groups=16 does not divide 8"),
])
def test_out_of_range_number(capsys, image_folder, tmp_path, flags, expected):
    line = fails_with_one_line(capsys, image_folder, tmp_path / "run", *flags)
    assert expected in line


# -- data ------------------------------------------------------------------------------

def test_missing_data_directory_without_download(capsys, tmp_path):
    line = fails_with_one_line(capsys, tmp_path / "no_such_data", tmp_path / "run",
                               "--data.download", "false")
    assert f"CIFAR-10 not found in {tmp_path / 'no_such_data'}" in line
    assert "downloading is off (--data.download false)" in line
    assert "Point --data.data_dir or CIFAR10_DIR at a copy" in line


def test_missing_data_directory_and_failed_download(capsys, tmp_path, monkeypatch):
    # A closed local port: the download fails at once, with or without a network.
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url",
                        "http://127.0.0.1:9/cifar-10-python.tar.gz")
    data_dir = tmp_path / "no_such_data"
    line = fails_with_one_line(capsys, data_dir, tmp_path / "run")
    assert "the download failed" in line
    assert not data_dir.exists()  # no empty folder left behind


def test_class_missing_from_test(capsys, small_folder, tmp_path):
    shutil.rmtree(small_folder / "test" / "class2")
    line = fails_with_one_line(capsys, small_folder, tmp_path / "run")
    assert f"{small_folder / 'test'} has different class folders" in line
    assert "missing ['class2']" in line


def test_empty_class_folder(capsys, small_folder, tmp_path):
    for image in (small_folder / "train" / "class1").iterdir():
        image.unlink()
    line = fails_with_one_line(capsys, small_folder, tmp_path / "run")
    assert f"class folder {small_folder / 'train' / 'class1'} holds no images" in line


def test_corrupt_image_is_named(capsys, small_folder, tmp_path):
    bad = small_folder / "train" / "class1" / "class1_0003.png"
    bad.write_bytes(b"this is not a png")
    line = fails_with_one_line(capsys, small_folder, tmp_path / "run")
    assert f"cannot decode image {bad}" in line
    assert "replace or delete the file" in line


def test_truncated_image_is_named(capsys, small_folder, tmp_path):
    bad = small_folder / "test" / "class3" / "class3_0001.png"
    bad.write_bytes(bad.read_bytes()[:200])
    line = fails_with_one_line(capsys, small_folder, tmp_path / "run")
    assert f"cannot decode image {bad}" in line


def test_image_of_another_size(capsys, small_folder, tmp_path):
    odd = small_folder / "train" / "class2" / "class2_0004.png"
    Image.new("RGB", (28, 28)).save(odd)
    line = fails_with_one_line(capsys, small_folder, tmp_path / "run")
    assert f"image {odd} is 28x28 with 3 channel(s)" in line
    assert "all images of a data set must share size and mode" in line


def test_image_of_another_mode(capsys, small_folder, tmp_path):
    gray = small_folder / "train" / "class0" / "class0_0005.png"
    Image.new("L", (32, 32)).save(gray)
    line = fails_with_one_line(capsys, small_folder, tmp_path / "run")
    assert f"image {gray} is 32x32 with 1 channel(s)" in line


def test_sixteen_bit_image(capsys, small_folder, tmp_path):
    deep = small_folder / "train" / "class0" / "class0_0002.png"
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(deep)
    line = fails_with_one_line(capsys, small_folder, tmp_path / "run")
    assert f"image {deep} has uint16 pixels" in line


def test_test_split_of_another_size(capsys, small_folder, tmp_path):
    for image in (small_folder / "test").rglob("*.png"):
        Image.new("RGB", (24, 24)).save(image)
    line = fails_with_one_line(capsys, small_folder, tmp_path / "run")
    assert "test images" in line and "are 24x24" in line and "training images are 32x32" in line


# -- output folder, device, precision, Trainer settings ----------------------------------

def test_output_directory_under_a_file(capsys, image_folder, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    line = fails_with_one_line(capsys, image_folder, blocker / "run")
    assert f"--trainer.default_root_dir {blocker / 'run'} cannot be created" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root may write to read-only folders")
def test_read_only_output_directory(capsys, image_folder, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        line = fails_with_one_line(capsys, image_folder, locked / "run")
    finally:
        locked.chmod(0o755)
    assert f"--trainer.default_root_dir {locked / 'run'} is not writable" in line


def test_checkpoint_directory_under_a_file(capsys, image_folder, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    line = fails_with_one_line(capsys, image_folder, tmp_path / "run",
                               "--checkpoint.dirpath", str(blocker / "ckpts"))
    assert f"--checkpoint.dirpath {blocker / 'ckpts'} cannot be created" in line


def test_gpu_requested_where_none_exists(capsys, image_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = fails_with_one_line(capsys, image_folder, tmp_path / "run",
                               "--trainer.accelerator", "gpu")
    assert "--trainer.accelerator gpu asks for a GPU, but PyTorch sees none" in line
    assert "use --trainer.accelerator cpu" in line


def pretend_gpu(monkeypatch, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")


def test_bf16_on_a_gpu_without_bf16(capsys, image_folder, tmp_path, monkeypatch):
    pretend_gpu(monkeypatch, bf16=False)
    line = fails_with_one_line(capsys, image_folder, tmp_path / "run",
                               "--trainer.accelerator", "gpu",
                               "--trainer.precision", "bf16-mixed")
    assert "--trainer.precision bf16-mixed: the GPU Tesla V100 has no native bfloat16" in line
    assert "use --trainer.precision 16-mixed or 32-true" in line


def test_bf16_allowed_where_supported(monkeypatch):
    check_accelerator("cpu", "bf16-mixed")  # CPUs run bf16 autocast
    pretend_gpu(monkeypatch, bf16=True)
    check_accelerator("gpu", "bf16-true")
    pretend_gpu(monkeypatch, bf16=False)
    check_accelerator("gpu", "16-mixed")
    with pytest.raises(ConfigError):
        check_accelerator("auto", "bf16-mixed")


def test_trainer_settings_lightning_rejects(capsys, image_folder, tmp_path):
    line = fails_with_one_line(capsys, image_folder, tmp_path / "run", "--trainer.devices", "0")
    assert line.startswith("error: --trainer settings cannot run here:")
    assert "devices" in line


# -- the real command, in a subprocess --------------------------------------------------

def assert_clean_failure(result, out_dir) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == lines[0]  # the last thing printed
    assert not out_dir.exists()
    return lines[0]


def test_cli_unknown_architecture(image_folder, tmp_path):
    out_dir = tmp_path / "run"
    result = run_entry_point("experiments.cifar_mlp",
                             run_args(image_folder, out_dir, "--model.arch", "vgg11"))
    line = assert_clean_failure(result, out_dir)
    assert "unknown arch 'vgg11'; choose one of: mlp, resnet18, timm" in line


def test_cli_corrupt_image(small_folder, tmp_path):
    # Found while decoding, after the Trainer has started: still one line, no files.
    bad = small_folder / "test" / "class0" / "class0_0000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out_dir = tmp_path / "run"
    result = run_entry_point("experiments.cifar_mlp", run_args(small_folder, out_dir))
    line = assert_clean_failure(result, out_dir)
    assert f"cannot decode image {bad}" in line


def test_cli_unknown_flag(image_folder, tmp_path):
    # jsonargparse prints its usage, then the error line, and exits with 2.
    out_dir = tmp_path / "run"
    result = run_entry_point("experiments.cifar_mlp",
                             run_args(image_folder, out_dir, "--model.learning_rate", "0.1"))
    line = assert_clean_failure(result, out_dir)
    assert "--model.learning_rate" in line


# -- checkpoints ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp_checkpoint(image_folder, tmp_path_factory):
    """A real checkpoint written by the CLI: MLP, hidden width 8, 4 classes."""
    out_dir = tmp_path_factory.mktemp("trained")
    cifar_mlp.main(run_args(image_folder, out_dir, "--trainer.limit_train_batches", "2"))
    return next((out_dir / "version_0" / "checkpoints").glob("best-*.ckpt"))


def assert_one_line(error: Exception) -> str:
    message = str(error)
    assert "\n" not in message
    return message


def test_checkpoint_loads_when_it_fits(mlp_checkpoint):
    model = ImageClassifier.load_from_checkpoint(mlp_checkpoint)
    saved = torch.load(mlp_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["net.head.weight"], saved["net.head.weight"])


@pytest.mark.parametrize(("overrides", "expected"), [
    # The checkpoint's MLP widths go back to their default with another architecture.
    ({"arch": "resnet18", "resnet_widths": [8, 8, 8, 8], "hidden_widths": [512, 256]},
     "arch='mlp' there, 'resnet18' here"),
    ({"num_classes": 7}, "(num_classes=4 there, 7 here)"),
    ({"hidden_widths": [16]}, "(hidden_widths=(8,) there, [16] here)"),
])
def test_checkpoint_of_another_network(mlp_checkpoint, overrides, expected):
    with pytest.raises(CheckpointError) as error:
        ImageClassifier.load_from_checkpoint(mlp_checkpoint, **overrides)
    message = assert_one_line(error.value)
    assert message.startswith(f"{mlp_checkpoint} holds a different network")
    assert expected in message


def test_trainer_refuses_checkpoint_of_another_architecture(mlp_checkpoint, image_folder):
    # fit/test(ckpt_path=...) go through on_load_checkpoint too, with the settings named.
    model = ImageClassifier(arch="resnet18", num_classes=4, resnet_widths=(8, 8, 8, 8))
    datamodule = CIFAR10DataModule(data_dir=str(image_folder), eval_batch_size=64)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with pytest.raises(CheckpointError) as error:
        trainer.test(model, datamodule=datamodule, ckpt_path=str(mlp_checkpoint))
    message = assert_one_line(error.value)
    assert "arch='mlp' there, 'resnet18' here" in message


@pytest.mark.parametrize(("content", "expected"), [
    (b"hello, I am a text file", "is not a readable checkpoint"),
    ("truncated", "is not a readable checkpoint"),
    ("tensors", "is not a Lightning checkpoint"),
])
def test_file_that_is_not_a_checkpoint(mlp_checkpoint, tmp_path, content, expected):
    path = tmp_path / "model.ckpt"
    if content == "truncated":
        path.write_bytes(mlp_checkpoint.read_bytes()[:4096])
    elif content == "tensors":
        torch.save({"weight": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        ImageClassifier.load_from_checkpoint(path)
    message = assert_one_line(error.value)
    assert message.startswith(f"{path} {expected}")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.ckpt does not exist"):
        read_checkpoint(tmp_path / "nothing.ckpt")


@pytest.mark.parametrize("variable", ["WORLD_SIZE", "SLURM_NTASKS"])
def test_torchrun_or_srun_without_a_shared_run_dir_stops_every_rank(
        image_folder, tmp_path, capsys, monkeypatch, variable):
    # Rank 0 must refuse too: stopping rank 1 alone left rank 0 waiting in DDP set-up.
    from src.runs.run_dir import RUN_DIR_ENV
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setenv(variable, "2")
    line = fails_with_one_line(capsys, image_folder, tmp_path / "out")
    assert line == ("error: processes launched outside Lightning (torchrun, srun) need an "
                    "explicit --run_dir shared by all of them")
