"""timm backbones: build and train from scratch, load local or cached weights, fail fast offline.

No test downloads anything: the pretrained paths use weights files written here.
"""

import socket

import huggingface_hub
import lightning as L
import pytest
import safetensors.torch
import timm
import torch
from torch.utils.data import DataLoader, TensorDataset

from experiments import cifar_resnet18
from src.core.errors import ConfigError, UserInputError
from src.modules import ImageClassifier
from tests.factories import make_network

SMALL_MODEL = "test_resnet"  # a tiny timm ResNet made for tests (~0.4M parameters)


def build_timm(**values):
    values = {"num_classes": 4, "in_channels": 3, "image_size": 32, "timm_model": SMALL_MODEL,
              **values}
    return make_network("timm", **values)


def tiny_loader(channels: int = 3, batches: int = 2) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(8 * batches, channels, 32, 32, generator=generator)
    targets = torch.randint(0, 4, (8 * batches,), generator=generator)
    return DataLoader(TensorDataset(images, targets), batch_size=8)


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 and an empty Hugging Face cache (so no cached copy interferes)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    return tmp_path / "hf_cache"


def test_timm_resnet18_builds_for_the_data_and_trains_a_step():
    torch.manual_seed(0)
    model = ImageClassifier(arch="timm", timm_model="resnet18", num_classes=4, in_channels=3,
                            scheduler="constant", lr=0.05)
    assert type(model.net).__module__.startswith("timm.")
    assert model.net.get_classifier().out_features == 4
    before = [p.detach().clone() for p in model.parameters()]
    quiet_trainer(max_steps=1).fit(model, tiny_loader(batches=1))
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    changed = [not torch.equal(a, b) for a, b in zip(before, after, strict=True)]
    # timm zero-initializes each block's last BN scale, so those blocks' conv2 weights get
    # no gradient in the first step; everything else moves.
    assert changed[-1] and sum(changed) > 0.8 * len(changed)


def test_timm_model_takes_channels_and_dropout_from_values():
    net = build_timm(in_channels=1, dropout=0.3)
    assert net.conv1[0].in_channels == 1 and net.drop_rate == 0.3
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_unknown_timm_model_fails_with_one_line_of_close_matches():
    with pytest.raises(ConfigError, match="unknown timm model 'resnet1'; close matches: ") as error:
        build_timm(timm_model="resnet1")
    assert "resnet18" in str(error.value) and "\n" not in str(error.value)


def test_timm_refuses_options_it_would_ignore():
    with pytest.raises(ConfigError, match="norm_position applies to arch resnet18, mlp only, "
                                          "and arch is 'timm'"):
        build_timm(act="gelu", norm_position="after")


def save_weights(path, model_name: str = SMALL_MODEL) -> dict[str, torch.Tensor]:
    """Write a timm-format weights file (1000-class head, like the published ones)."""
    torch.manual_seed(1)
    state = timm.create_model(model_name).state_dict()
    if path.suffix == ".safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        torch.save(state, path)
    return state


def assert_backbone_loaded(net, state: dict[str, torch.Tensor]) -> None:
    head_keys = {"fc.weight", "fc.bias"}
    for key, value in net.state_dict().items():
        if key not in head_keys:
            assert torch.equal(value, state[key]), key
    assert net.get_classifier().out_features == 4  # a new head for our classes


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file_loads_the_backbone_and_replaces_the_head(tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    state = save_weights(path)
    net = build_timm(pretrained_path=str(path), init="normal", init_std=0.5)
    assert_backbone_loaded(net, state)
    # With pretrained weights the init touches only the new head.
    assert torch.count_nonzero(net.fc.bias) == 0
    assert net.fc.weight.std().item() == pytest.approx(0.5, rel=0.25)


def test_weights_of_another_model_are_refused_in_one_line(tmp_path):
    path = tmp_path / "convnext.pth"
    save_weights(path, "test_convnext")
    with pytest.raises(ConfigError, match="does not fit timm model 'test_resnet'") as error:
        build_timm(pretrained_path=str(path))
    assert "\n" not in str(error.value)


def test_missing_weights_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="pretrained_path .* is not a file"):
        build_timm(pretrained_path=str(tmp_path / "nope.pth"))


def test_pretrained_offline_fails_at_once_with_one_line(offline_hub):
    with pytest.raises(UserInputError) as error:
        build_timm(timm_model="resnet18", pretrained=True)
    message = str(error.value)
    assert "\n" not in message
    assert "'resnet18'" in message and "--model.pretrained_path FILE" in message


def test_pretrained_with_unreachable_host_fails_at_once(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        with pytest.raises(ConfigError, match="127.0.0.1 cannot be reached"):
            build_timm(pretrained=True)


def test_pretrained_offline_uses_the_hugging_face_cache(offline_hub):
    """Weights an earlier run downloaded load offline from the cache, with no network."""
    repo_id = timm.models.get_pretrained_cfg(SMALL_MODEL).hf_hub_id  # timm/test_resnet.<tag>
    repo = offline_hub / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    state = save_weights(repo / "snapshots" / commit / "model.safetensors")
    assert_backbone_loaded(build_timm(pretrained=True), state)


def test_entry_point_reports_offline_pretrained_in_one_line(offline_hub, image_folder,
                                                            tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cifar_resnet18.main(["--data.data_dir", str(image_folder),
                             "--trainer.default_root_dir", str(tmp_path / "runs"),
                             "--model.arch", "timm", "--model.timm_model", "resnet18",
                             "--model.pretrained", "true"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1
    assert errors[0].startswith("error: cannot get pretrained weights for timm model 'resnet18'")
    assert not (tmp_path / "runs").exists()  # failed before anything was written
