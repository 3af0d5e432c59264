"""EMA and SWA: the averaged weights are the closed-form average, and validation,
checkpoints and the test after fitting use them."""

import copy

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset

from experiments import cifar_mlp
from src.callbacks.weight_averaging import EMAWeights, SWAWeights, build_weight_averaging
from src.core.errors import ConfigError
from src.modules import ImageClassifier
from tests.checks import assert_tested_checkpoint, best_checkpoint


class RecordingClassifier(ImageClassifier):
    """Records the weights after every optimizer step and those validation and test see."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.after_step: list[dict[str, torch.Tensor]] = []
        self.validated: list[dict[str, torch.Tensor]] = []
        self.tested: dict[str, torch.Tensor] = {}

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {name: value.detach().clone() for name, value in self.state_dict().items()}

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.after_step.append(self.snapshot())

    def validation_step(self, batch, batch_idx: int) -> None:
        if batch_idx == 0 and not self.trainer.sanity_checking:
            self.validated.append(self.snapshot())
        super().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        self.tested = self.snapshot()
        super().test_step(batch, batch_idx)


def tiny_model(norm: str = "none") -> RecordingClassifier:
    torch.manual_seed(0)
    return RecordingClassifier(arch="mlp", num_classes=2, in_channels=1, image_size=4,
                               hidden_widths=(8,), norm=norm, optimizer="sgd", lr=0.5,
                               momentum=0.0, nesterov=False, scheduler="constant")


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(24, 1, 4, 4, generator=generator)
    labels = (images.mean(dim=(1, 2, 3)) > 0).long()
    return DataLoader(TensorDataset(images, labels), batch_size=8)  # 3 steps per epoch


def fit(model, callback, tmp_path, epochs: int, max_steps: int = -1,
        ckpt_path: str | None = None):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val/acc", mode="max",
                                 save_last=True)
    trainer = L.Trainer(max_epochs=epochs, max_steps=max_steps,
                        callbacks=[callback, checkpoint], logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    trainer.fit(model, loader(), loader(), ckpt_path=ckpt_path)
    return trainer, checkpoint


def test_ema_is_the_closed_form_average_and_validation_uses_it(tmp_path):
    model, decay = tiny_model(), 0.6
    trainer, checkpoint = fit(model, EMAWeights(decay=decay), tmp_path, epochs=2)
    assert len(model.after_step) == 6 and len(model.validated) == 2
    # ema_1 = w_1, ema_t = decay * ema_{t-1} + (1 - decay) * w_t, at every optimizer step.
    ema = dict(model.after_step[0])
    for step, weights in enumerate(model.after_step[1:], start=2):
        ema = {name: decay * ema[name] + (1 - decay) * weights[name] for name in ema}
        if step % 3 == 0:  # end of an epoch: validation sees the average
            validated = model.validated[step // 3 - 1]
            for name in ema:
                torch.testing.assert_close(validated[name], ema[name])
                assert not torch.allclose(validated[name], weights[name])
    # The last checkpoint holds the average, the raw weights ride along for resuming.
    saved = torch.load(checkpoint.last_model_path, weights_only=False)
    for name in ema:
        torch.testing.assert_close(saved["state_dict"][name], ema[name])
        torch.testing.assert_close(saved["current_model_state"][name],
                                   model.after_step[-1][name])
    # After fitting the module holds the average.
    torch.testing.assert_close(model.net.state_dict(), {
        name.removeprefix("net."): value for name, value in ema.items()})


def test_test_after_fit_uses_the_averaged_weights_of_the_checkpoint(tmp_path):
    model = tiny_model()
    trainer, checkpoint = fit(model, EMAWeights(decay=0.5), tmp_path, epochs=2)
    trainer.test(model, loader(), ckpt_path=checkpoint.best_model_path, verbose=False)
    saved = torch.load(checkpoint.best_model_path, weights_only=False)
    raw = saved["current_model_state"]
    for name, value in saved["state_dict"].items():
        torch.testing.assert_close(model.tested[name], value)
        assert not torch.equal(value, raw[name])


def test_swa_averages_epoch_ends_and_recomputes_batch_norm(tmp_path):
    model = tiny_model(norm="batch")
    trainer, checkpoint = fit(model, SWAWeights(epoch_start=0.5), tmp_path, epochs=4)
    epoch_ends = model.after_step[2::3]  # weights after the last step of epochs 0..3
    params = [name for name, _ in model.named_parameters()]
    # Epochs 0 and 1 come before the start (floor(0.5 * 4) = 2): validation sees the
    # current weights; from epoch 2 on, the equal average of the epoch ends so far.
    for epoch in (0, 1):
        for name in params:
            torch.testing.assert_close(model.validated[epoch][name], epoch_ends[epoch][name])
    for epoch, averaged_ends in ((2, epoch_ends[2:3]), (3, epoch_ends[2:4])):
        for name in params:
            expected = torch.stack([ends[name] for ends in averaged_ends]).mean(dim=0)
            torch.testing.assert_close(model.validated[epoch][name], expected)
    # BatchNorm statistics are those of the averaged weights on the training data.
    reference = copy.deepcopy(model)
    update_bn((images for images, _ in loader()), reference)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(model.validated[3][name], value)
        torch.testing.assert_close(model.state_dict()[name], value)  # after fitting
    saved = torch.load(checkpoint.last_model_path, weights_only=False)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(saved["state_dict"][name], value)


def test_swa_without_bn_update_averages_the_running_statistics(tmp_path):
    model = tiny_model(norm="batch")
    fit(model, SWAWeights(epoch_start=0.5, update_bn=False), tmp_path, epochs=4)
    epoch_ends = model.after_step[2::3]
    name = next(name for name in epoch_ends[0] if name.endswith("running_mean"))
    expected = (epoch_ends[2][name] + epoch_ends[3][name]) / 2
    torch.testing.assert_close(model.state_dict()[name], expected)


def test_swa_resumed_mid_averaging_ends_as_an_uninterrupted_run(tmp_path):
    uninterrupted = tiny_model(norm="batch")
    fit(uninterrupted, SWAWeights(epoch_start=0.5), tmp_path / "full", epochs=4)
    # Stopped after epoch 2 (9 steps), the first averaged epoch, then resumed.
    _, checkpoint = fit(tiny_model(norm="batch"), SWAWeights(epoch_start=0.5),
                        tmp_path / "part", epochs=4, max_steps=9)
    resumed = tiny_model(norm="batch")
    fit(resumed, SWAWeights(epoch_start=0.5), tmp_path / "resumed", epochs=4,
        ckpt_path=checkpoint.last_model_path)
    torch.testing.assert_close(resumed.state_dict(), uninterrupted.state_dict())


def test_averaged_copy_follows_the_model_to_its_training_device():
    model, callback = tiny_model(), EMAWeights(decay=0.9)
    # Lightning builds the copy in setup, before the strategy moves the model.
    callback.setup(trainer=None, pl_module=model, stage="fit")
    model.to("meta")
    callback.on_fit_start(trainer=None, pl_module=model)
    assert {p.device.type for p in callback._average_model.parameters()} == {"meta"}


@pytest.mark.parametrize(("settings", "message"), [
    (dict(ema_decay=0.99, swa_epoch_start=0.5), "choose one weight averaging"),
    (dict(ema_decay=1.0), "ema.decay=1.0 is out of range"),
    (dict(swa_epoch_start=1.0), "swa.epoch_start=1.0 is out of range"),
])
def test_bad_weight_averaging_settings_fail(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_weight_averaging(**settings)


def test_flags_pick_the_callback():
    assert build_weight_averaging() == []
    (ema,) = build_weight_averaging(ema_decay=0.99)
    assert isinstance(ema, EMAWeights) and ema.decay == 0.99
    (swa,) = build_weight_averaging(swa_epoch_start=0.8, swa_update_bn=False)
    assert isinstance(swa, SWAWeights) and (swa.epoch_start, swa.update_bn) == (0.8, False)


def test_cli_run_with_ema(image_folder, tmp_path):
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--ema.decay", "0.9",
        "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[32]",
    ])
    best = best_checkpoint(tmp_path / "runs" / "version_0")
    # The test figures are those of the checkpoint's (averaged) weights, by hand.
    assert_tested_checkpoint(results, best, image_folder)
    saved = torch.load(best, weights_only=False)
    # The selected checkpoint holds the average, which differs from the raw weights.
    assert not torch.equal(saved["state_dict"]["net.head.weight"],
                           saved["current_model_state"]["net.head.weight"])
