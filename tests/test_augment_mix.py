"""mixup, cutmix and mosaic: targets sum to 1 and equal the images' actual mixing."""

import torch
import torch.nn.functional as F

from src.datamodules.augment.mix import CutMix, MixUp, Mosaic

BATCH = 16


def constant_images(dtype=torch.uint8) -> torch.Tensor:
    """Image b is filled with its own value 10*b + 5, so every pixel names its source."""
    values = torch.arange(BATCH) * 10 + 5
    images = values[:, None, None, None].expand(BATCH, 3, 32, 32).to(torch.uint8)
    return images.contiguous() if dtype == torch.uint8 else images.float() / 255


def one_hot_targets() -> torch.Tensor:
    return F.one_hot(torch.arange(BATCH), BATCH).float()  # image b has class b


def assert_distributions(targets: torch.Tensor) -> None:
    assert targets.shape == (BATCH, BATCH)
    assert (targets >= 0).all()
    assert torch.allclose(targets.sum(dim=1), torch.ones(BATCH))


def test_mixup_targets_match_the_mixing_ratio_of_the_pixels():
    torch.manual_seed(0)
    images = constant_images(torch.float32)
    out, targets = MixUp(alpha=1.0)(images, one_hot_targets())
    assert_distributions(targets)
    shares = []
    for b in range(BATCH):
        weights = targets[b]
        expected = (weights[:, None, None, None] * images).sum(dim=0)  # sum_k w_k x_k
        assert torch.allclose(out[b], expected, atol=1e-6)
        assert (weights > 0).sum() <= 2  # itself and one partner
        shares.append(float(weights[b]))
    assert len({round(s, 4) for s in shares}) > 8  # one ratio per image


def test_mixup_with_explicit_ratio_and_partner():
    images = constant_images(torch.float32)
    lam = torch.linspace(0.1, 0.9, BATCH)
    partner = torch.arange(BATCH).roll(1)
    out, targets = MixUp.mix(images, one_hot_targets(), lam, partner)
    assert torch.allclose(out, lam[:, None, None, None] * images
                          + (1 - lam[:, None, None, None]) * images[partner])
    assert torch.allclose(targets[torch.arange(BATCH), torch.arange(BATCH)], lam)
    assert torch.allclose(targets[torch.arange(BATCH), partner], 1 - lam)


def test_cutmix_target_weight_equals_the_pasted_area_fraction():
    torch.manual_seed(0)
    images = constant_images()
    out, targets = CutMix(alpha=1.0)(images, one_hot_targets())
    assert_distributions(targets)
    pasted_fractions = []
    for b in range(BATCH):
        # Pixels from source k carry the value of image k: the area shares must match.
        area = torch.stack([(out[b, 0] == images[k, 0, 0, 0]).float().mean()
                            for k in range(BATCH)])
        assert torch.allclose(targets[b], area)
        pasted = out[b, 0] != images[b, 0, 0, 0]
        rows, cols = pasted.any(dim=1), pasted.any(dim=0)
        assert int(pasted.sum()) == int(rows.sum()) * int(cols.sum())  # one rectangle
        pasted_fractions.append(float(pasted.float().mean()))
    assert len(set(pasted_fractions)) > 5  # one box per image


def test_mosaic_target_weights_equal_the_tile_areas():
    torch.manual_seed(0)
    images = constant_images()
    out, targets = Mosaic()(images, one_hot_targets())
    assert_distributions(targets)
    own_shares = []
    for b in range(BATCH):
        area = torch.stack([(out[b, 0] == images[k, 0, 0, 0]).float().mean()
                            for k in range(BATCH)])
        assert torch.allclose(targets[b], area)
        own_shares.append(float(targets[b, b]))
        # top-left tile is the image itself and covers 1/16 to 9/16 of it
        assert 1 / 16 - 1e-6 <= own_shares[-1]
    assert len(set(own_shares)) > 5


def test_mosaic_tiles_show_the_central_crop_of_each_source():
    # Pixel values encode (source, row, col); float so they survive exactly.
    rows = torch.arange(32.0)[:, None] * 100
    cols = torch.arange(32.0)[None, :]
    images = torch.stack([(rows + cols + 10_000 * k).expand(3, 32, 32) for k in range(4)])
    targets = F.one_hot(torch.arange(4), 4).float()
    sources = torch.tensor([[0, 1, 2, 3]] * 4)
    split_y, split_x = torch.full((4,), 10), torch.full((4,), 20)
    out, mixed = Mosaic.tile(images, targets, split_y, split_x, sources)
    # tile sizes 10x20, 10x12, 22x20, 22x12; each the centre of its 32x32 source
    assert torch.equal(out[0, :, :10, :20], images[0, :, 11:21, 6:26])
    assert torch.equal(out[0, :, :10, 20:], images[1, :, 11:21, 10:22])
    assert torch.equal(out[0, :, 10:, :20], images[2, :, 5:27, 6:26])
    assert torch.equal(out[0, :, 10:, 20:], images[3, :, 5:27, 10:22])
    expected = torch.tensor([10 * 20, 10 * 12, 22 * 20, 22 * 12]) / 1024
    assert torch.allclose(mixed[0], expected)


def test_mixing_probability_zero_keeps_images_and_one_hot_targets():
    images, targets = constant_images(), one_hot_targets()
    for mixing in (MixUp(p=0.0), CutMix(p=0.0), Mosaic(p=0.0)):
        out, mixed = mixing(images, targets)
        assert torch.equal(out, images) and torch.equal(mixed, targets), type(mixing).__name__


def test_mixing_mixes_soft_targets_again():
    torch.manual_seed(0)
    images = constant_images(torch.float32)
    out, targets = MixUp()(images, one_hot_targets())
    out, targets = CutMix()(out, targets)
    assert_distributions(targets)
    assert ((targets > 0).sum(dim=1) > 2).any()  # some images now mix 3 or 4 sources
