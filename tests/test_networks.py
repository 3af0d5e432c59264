"""Networks from plain values: norm placement, dropout, DropBlock, and the CLI flags."""

import pytest
import torch
import yaml
from timm.layers import DropBlock2d
from torch import nn

from experiments import cifar_mlp, cifar_resnet18
from src.core.errors import ConfigError
from src.modules import ImageClassifier
from src.modules.layers import NORM_NAMES, VECTOR_NORM_NAMES
from src.modules.networks import NETWORKS
from src.modules.resnet import BasicBlock
from tests.checks import assert_tested_checkpoint, best_checkpoint
from tests.factories import make_network

NORMS = {"mlp": VECTOR_NORM_NAMES, "resnet18": NORM_NAMES}
TINY = {"mlp": {"hidden_widths": (16, 8)}, "resnet18": {"resnet_widths": (8, 8, 8, 8)}}


def tiny(arch: str, **values) -> nn.Module:
    """A tiny network; 4 groups when the norm is the group norm (widths of 8 and 16)."""
    groups = {"norm_groups": 4} if values.get("norm") == "group" else {}
    return make_network(arch, num_classes=3, in_channels=3, image_size=16,
                        **{**TINY.get(arch, {}), **groups, **values})


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_default_resnet18_is_unchanged():
    net = ImageClassifier().net
    assert count_parameters(net) == 11_173_962
    assert isinstance(net.stem[1], nn.BatchNorm2d) and isinstance(net.stem[2], nn.ReLU)
    assert not any(isinstance(m, DropBlock2d | nn.Dropout) for m in net.modules())


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize(("arch", "norm"),
                         [(arch, norm) for arch in ("mlp", "resnet18") for norm in NORMS[arch]])
def test_every_norm_and_placement_builds_and_trains(arch, norm, position):
    torch.manual_seed(0)
    net = tiny(arch, norm=norm, norm_position=position)
    x = torch.randn(4, 3, 16, 16)  # stage 4 gets 2x2 maps (instance norm needs > 1 pixel)
    logits = net(x)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    # The logits come straight from the linear head: no norm on the classifier output.
    net.eval()
    assert isinstance(net.get_classifier(), nn.Linear)
    assert torch.allclose(net(x), net.get_classifier()(net.forward_features(x)))


@pytest.mark.parametrize("arch", ["mlp", "resnet18"])
def test_placement_keeps_the_parameters(arch):
    before, after = tiny(arch, norm_position="before"), tiny(arch, norm_position="after")
    assert count_parameters(before) == count_parameters(after)


def test_mlp_norm_placement_orders_the_layers():
    def layer_types(position):
        net = tiny("mlp", norm_position=position, act="gelu", hidden_widths=(16,))
        return [type(m) for m in net.features]

    assert layer_types("before") == [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.GELU]
    assert layer_types("after") == [nn.Flatten, nn.Linear, nn.GELU, nn.BatchNorm1d]


def test_resnet_norm_after_act_normalizes_the_block_output():
    """"after": the block ends act -> norm, so in training its output has per-channel batch
    mean 0 and variance 1; "before" ends with ReLU after the addition, so it is >= 0."""
    torch.manual_seed(0)
    x = torch.randn(16, 8, 8, 8)
    after = tiny("resnet18", norm_position="after").stages[0][0]
    out = after(x)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(8), atol=1e-3)
    before = tiny("resnet18", norm_position="before").stages[0][0]
    assert before(x).min() >= 0
    stem = tiny("resnet18", norm_position="after").stem
    assert [type(m) for m in stem] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]


def test_mlp_dropout_follows_every_hidden_layer():
    net = tiny("mlp", dropout=0.3)
    dropouts = [m for m in net.features if isinstance(m, nn.Dropout)]
    assert [d.p for d in dropouts] == [0.3, 0.3]
    assert isinstance(net.features[-1], nn.Dropout)  # the last hidden layer's, before head


def test_resnet_dropout_acts_before_the_head_in_training_only():
    torch.manual_seed(0)
    net = tiny("resnet18", dropout=0.5)
    features = torch.randn(4, 8)
    net.train()
    assert not torch.equal(net.forward_head(features), net.forward_head(features))
    net.eval()
    assert torch.equal(net.forward_head(features), net.get_classifier()(features))


def test_drop_block_sits_in_stages_3_and_4_with_its_settings():
    net = tiny("resnet18", drop_block_prob=0.2, drop_block_size=5)
    for stage_index, stage in enumerate(net.stages):
        drop_blocks = [b.drop_block for b in stage]
        if stage_index + 1 in (3, 4):
            assert all(isinstance(d, DropBlock2d) for d in drop_blocks)
            assert {(d.drop_prob, d.block_size) for d in drop_blocks} == {(0.2, 5)}
        else:
            assert all(isinstance(d, nn.Identity) for d in drop_blocks)


def test_drop_block_drops_blocks_in_training_and_is_identity_in_eval():
    torch.manual_seed(0)
    block = BasicBlock(8, 8, 1, nn.BatchNorm2d, nn.ReLU, drop_block=DropBlock2d(0.3, 3))
    features = torch.rand(4, 8, 8, 8) + 1.0  # all positive, so zeros come from the drop
    dropped = block.drop_block(features)
    assert (dropped == 0).any() and not torch.equal(dropped, features)
    # A dropped 3x3 block zeroes whole squares: some 3x3 window is zero in every channel.
    all_zero = (dropped == 0).all(dim=1, keepdim=True).float()
    assert (nn.functional.avg_pool2d(all_zero, 3, stride=1) == 1).any()
    block.eval()
    assert torch.equal(block.drop_block(features), features)

    net = tiny("resnet18", drop_block_prob=0.3)
    x = torch.randn(4, 3, 16, 16)
    assert not torch.equal(net(x), net(x))  # random blocks in training
    net.eval()
    assert torch.equal(net(x), net(x))


@pytest.mark.parametrize(("arch", "values", "expected"), [
    ("vgg", {}, "unknown arch 'vgg'; choose one of: " + ", ".join(sorted(NETWORKS))),
    ("mlp", {"norm_position": "middle"}, "unknown norm_position 'middle'; choose one of: after"),
    ("mlp", {"drop_block_prob": 0.1}, "drop_block_prob applies to arch resnet18 only"),
    ("resnet18", {"drop_block_prob": 1.0}, "drop_block_prob=1.0 is out of range"),
    ("resnet18", {"drop_block_size": 0}, "drop_block_size=0 is out of range"),
    ("resnet18", {"pretrained": True}, "pretrained applies to arch timm only"),
    ("resnet50", {}, "unknown arch 'resnet50'; choose one of: mlp, resnet18, timm"),
    ("resnet18", {"norm": "bach"}, "unknown norm 'bach'"),
    ("mlp", {"norm": "instance"}, "unknown normalization for vector features"),
    ("resnet18", {"act": "relu7"}, "unknown act 'relu7'"),
    ("resnet18", {"norm": "group", "norm_groups": 3}, "norm_groups=3 does not divide 8"),
    ("mlp", {"dropout": 1.0}, r"dropout=1.0 is out of range"),
])
def test_bad_network_settings_fail_with_one_line(arch, values, expected):
    with pytest.raises(ConfigError, match=expected) as error:
        tiny(arch, **values)
    assert "\n" not in str(error.value)


def run_flags(image_folder, tmp_path, *flags: str) -> list[str]:
    return ["--data.data_dir", str(image_folder), "--data.batch_size", "16",
            "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path / "runs"),
            "--trainer.enable_progress_bar", "false", *flags]


def saved_model_config(tmp_path) -> dict:
    config = yaml.safe_load((tmp_path / "runs" / "version_0" / "config.yaml").read_text())
    return config["model"]


def test_resnet_entry_point_runs_with_non_default_network_flags(image_folder, tmp_path):
    results = cifar_resnet18.main(run_flags(
        image_folder, tmp_path, "--model.resnet_widths", "[8,8,8,8]", "--model.act", "gpn_elu",
        "--model.init", "kaiming_normal", "--model.norm_position", "after",
        "--model.drop_block_prob", "0.1", "--model.drop_block_size", "2"))
    # DropBlock is off in eval: the test figures are the best checkpoint's, by hand.
    assert_tested_checkpoint(results, best_checkpoint(tmp_path / "runs" / "version_0"),
                             image_folder)
    model = saved_model_config(tmp_path)
    assert (model["act"], model["init"], model["norm_position"]) == (
        "gpn_elu", "kaiming_normal", "after")
    assert (model["drop_block_prob"], model["drop_block_size"]) == (0.1, 2)


def test_mlp_entry_point_runs_with_activation_parameters(image_folder, tmp_path):
    results = cifar_mlp.main(run_flags(
        image_folder, tmp_path, "--model.hidden_widths", "[16]", "--model.act", "leaky_relu",
        "--model.act_slope", "0.2", "--model.init", "normal", "--model.init_std", "0.02",
        "--model.norm_position", "after"))
    accuracy = assert_tested_checkpoint(
        results, best_checkpoint(tmp_path / "runs" / "version_0"), image_folder)
    assert accuracy >= 0.5  # chance: 0.25 (this run: 0.75 after one epoch)
    model = saved_model_config(tmp_path)
    assert (model["act_slope"], model["init_std"]) == (0.2, 0.02)


def test_print_config_shows_the_network_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cifar_resnet18.main(["--print_config"])
    assert exit_info.value.code == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    for option in ("norm_position", "act_slope", "act_alpha", "init", "init_std", "init_gain",
                   "drop_block_prob", "drop_block_size", "timm_model", "pretrained",
                   "pretrained_path", "freeze_backbone_epochs"):
        assert option in model


def test_bad_network_flag_exits_with_one_line(image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cifar_mlp.main(run_flags(image_folder, tmp_path, "--model.init", "he_normal"))
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: unknown init 'he_normal'")


def test_resnet18_is_the_cifar_variant():
    net = make_network("resnet18", num_classes=10, in_channels=3, image_size=32)
    stem_conv = net.stem[0]
    assert stem_conv.kernel_size == (3, 3) and stem_conv.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    blocks = [len(stage) for stage in net.stages]
    assert blocks == [2, 2, 2, 2]
    # 32x32 input -> 4x4 maps at the last stage (three stride-2 stages).
    features = net.stages(net.stem(torch.randn(1, 3, 32, 32)))
    assert features.shape == (1, 512, 4, 4)


def test_mlp_layout_follows_the_widths():
    net = make_network("mlp", num_classes=10, in_channels=3, image_size=32, norm="layer",
                        act="gelu", hidden_widths=(64, 32), dropout=0.5)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3072, 64), (64, 32), (32, 10)]
    assert sum(isinstance(m, nn.LayerNorm) for m in net.modules()) == 2
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 2
    assert sum(isinstance(m, nn.GELU) for m in net.modules()) == 2


@pytest.mark.parametrize(("arch", "widths", "groups", "expected_layers"), [
    # ResNet18: stem 1 + 8 blocks x 2 + 3 projection shortcuts = 20 norms. Widths that
    # the default 32 groups also divide, so a lost setting would build without error.
    ("resnet18", {"resnet_widths": (32, 32, 64, 64)}, 4, 20),
    ("mlp", {"hidden_widths": (64, 32)}, 8, 2),
])
def test_group_norm_gets_the_configured_number_of_groups(arch, widths, groups, expected_layers):
    torch.manual_seed(0)
    net = make_network(arch, num_classes=3, in_channels=3, image_size=8, norm="group",
                       norm_groups=groups, **widths)
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == expected_layers
    assert {m.num_groups for m in norms} == {groups}
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm | nn.LayerNorm)
                   for m in net.modules())
