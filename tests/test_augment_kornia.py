"""Where the registry runs kornia, its draws follow the distribution the registry promises
(torchvision's, as before); where we keep our own code for a difference in kornia's
distribution, that difference is pinned here, so a kornia release that removes it fails a
test and the choice can be revisited.

Statistics compare many seeded draws against the reference with tolerances of a few
standard errors of the sampling (`FOUR_SE`); the seeds make each test deterministic.
"""

import math

import pytest
import torch
from kornia.augmentation import RandomErasing as KorniaRandomErasing
from kornia.augmentation import auto
from torchvision.transforms.v2 import functional as TF

from src.datamodules.augment import build_augmentation
from src.datamodules.augment.base import KorniaAugmentation, sample_boxes

FOUR_SE = 4.0  # tolerance in standard errors: a false alarm about once in 16,000 seeds


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    points = torch.cat([a, b]).sort().values
    cdf_a = torch.searchsorted(a.sort().values, points, right=True) / len(a)
    cdf_b = torch.searchsorted(b.sort().values, points, right=True) / len(b)
    return float((cdf_a - cdf_b).abs().max())


def ks_critical(n: int, m: int, alpha: float = 1e-4) -> float:
    """The KS statistic two samples of one distribution exceed with probability alpha."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n + m) / (n * m))


# -- noise: kornia's RandomGaussianNoise (+ clip) against torchvision's gaussian_noise ------

@pytest.mark.parametrize("level", [0.5, 0.02])  # 0.02: the clip at 0 shapes the output
def test_noise_follows_torchvision_gaussian_noise(level):
    torch.manual_seed(0)
    images = torch.full((64, 3, 32, 32), level)
    ours = build_augmentation({"name": "noise", "sigma": 0.05})(images).flatten()
    reference = TF.gaussian_noise(images, mean=0.0, sigma=0.05, clip=True).flatten()
    assert isinstance(build_augmentation("noise"), KorniaAugmentation)
    # Means and spreads agree within the sampling error of two samples of n pixels each.
    n = len(ours)
    spread = float(reference.std())
    assert abs(float(ours.mean() - reference.mean())) < FOUR_SE * spread * math.sqrt(2 / n)
    assert abs(float(ours.std() - reference.std())) < FOUR_SE * spread * math.sqrt(1 / n)
    assert ks_statistic(ours[:20_000], reference[:20_000]) < ks_critical(20_000, 20_000)
    assert ours.min() >= 0 and ours.max() <= 1


def test_noise_mean_parameter_and_per_image_probability():
    torch.manual_seed(0)
    images = torch.full((4000, 1, 4, 4), 0.5)
    noise = build_augmentation({"name": "noise", "sigma": 0.02, "mean": 0.1, "p": 0.3})
    out = noise(images)
    touched = (out != images).flatten(1).any(dim=1).float()
    rate_se = math.sqrt(0.3 * 0.7 / len(touched))
    assert abs(float(touched.mean()) - 0.3) < FOUR_SE * rate_se
    shift = (out - images)[touched.bool()].flatten()
    assert abs(float(shift.mean()) - 0.1) < FOUR_SE * 0.02 / math.sqrt(len(shift))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_kornia_draws_on_the_batch_device():
    noise = build_augmentation("noise")
    out = noise(torch.full((8, 3, 32, 32), 0.5, device="cuda"))
    assert out.device.type == "cuda" and noise.kornia.device.type == "cuda"


# -- kept: where kornia's distribution differs ------------------------------------------

@pytest.mark.parametrize(("policy", "selections"), [
    (auto.AutoAugment("cifar10"), 1), (auto.RandAugment(n=2, m=9), 2),
    (auto.TrivialAugment(), 1)])
def test_kornia_policies_draw_their_operations_once_per_batch(policy, selections):
    # Ours (torchvision's policies, per image) give each image its own operations; kornia's
    # picks one sub-policy (or n operations) per call and applies it to the whole batch.
    torch.manual_seed(0)
    images = torch.rand(32, 3, 32, 32)
    for _ in range(3):
        policy(images)
        assert len(policy._params) == selections  # one choice shared by the 32 images


def test_kornia_erasing_draws_aspect_ratios_unlike_torchvision():
    # torchvision's RandomErasing (ours): log(h/w) uniform, up to 10 tries for a box
    # strictly inside the image. kornia's: h/w uniform on [0.3, 1] or on [1, 3.3], half
    # and half, one try. The ratios of the (rounded) boxes tell them apart.
    torch.manual_seed(0)
    n, scale, ratio = 20_000, (0.02, 0.33), (0.3, 3.3)
    _, _, box_h, box_w, _ = sample_boxes(n, 32, 32, scale, (1 / ratio[1], 1 / ratio[0]),
                                         torch.device("cpu"), must_be_smaller=True)
    params = KorniaRandomErasing(scale=scale, ratio=ratio, p=1.0).forward_parameters(
        (n, 3, 32, 32))
    ours = (box_h / box_w).log()
    kornia = (params["heights"] / params["widths"]).log()
    assert ks_statistic(ours, kornia) > 3 * ks_critical(n, n)
