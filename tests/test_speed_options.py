"""Model speed options: channels_last memory format and torch.compile."""

import copy

import pytest
import torch

from src.modules import ImageClassifier

TINY_RESNET = dict(arch="resnet18", resnet_widths=(4, 8, 8, 8), num_classes=4)


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    plain = ImageClassifier(**TINY_RESNET).eval()
    fast = ImageClassifier(**TINY_RESNET, channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    parameters = [id(p) for p in fast.parameters()]
    # The switch happens on a CUDA device only; pretend the module is on one (the forward
    # pass below runs on the CPU, whose channels_last forward is fine).
    fast.use_memory_format(torch.device("cuda"))
    assert fast.uses_channels_last and [id(p) for p in fast.parameters()] == parameters
    conv = fast.net.stem[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    images = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(fast(images), plain(images), atol=1e-5, rtol=1e-4)
    assert plain.state_dict().keys() == fast.state_dict().keys()  # same checkpoints


def test_channels_last_is_not_used_on_the_cpu():
    model = ImageClassifier(**TINY_RESNET, channels_last=True)
    with pytest.warns(UserWarning, match="channels_last is used on CUDA devices only"):
        model.use_memory_format(torch.device("cpu"))
    assert not model.uses_channels_last
    assert model.net.stem[0].weight.is_contiguous()


@pytest.mark.slow
def test_compiled_model_trains_one_step_like_the_eager_model():
    # torch.compile on a CPU takes tens of seconds even for a tiny network.
    torch.manual_seed(0)
    eager = ImageClassifier(arch="mlp", hidden_widths=(16,), num_classes=4, image_size=8,
                            in_channels=1, optimizer="sgd", lr=0.1)
    compiled = ImageClassifier(arch="mlp", hidden_widths=(16,), num_classes=4, image_size=8,
                               in_channels=1, optimizer="sgd", lr=0.1, compile=True)
    compiled.load_state_dict(copy.deepcopy(eager.state_dict()))
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints unchanged
    images, targets = torch.randn(8, 1, 8, 8), torch.randint(0, 4, (8,))
    for model in (eager, compiled):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model.loss(model(images), targets).backward()
        optimizer.step()
    for p_eager, p_compiled in zip(eager.parameters(), compiled.parameters(), strict=True):
        assert torch.allclose(p_eager, p_compiled, atol=1e-5)
    assert compiled.net._compiled_call_impl is not None  # it really ran compiled
