"""Batch augmentations: every one keeps shape/dtype/range, draws per image, is seeded;
the vectorized ones equal torchvision's functional result for the same parameters."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from src.datamodules.augment import AUGMENTATIONS, build_augmentation, build_augmentations
from src.datamodules.augment.base import LabelMixing
from src.datamodules.augment.color import (
    ColorJitter,
    GaussianBlur,
    GaussianNoise,
    RandomGrayscale,
    RandomRGBShift,
)
from src.datamodules.augment.erase import Cutout, RandomErasing
from src.datamodules.augment.geometric import (
    RandomAffine,
    RandomCropWithPadding,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
)

NUM_CLASSES = 16

# Settings that make an augmentation act on about half of the images or more, so a batch
# of 16 shows whether each image draws for itself.
VISIBLE = {"grayscale": {"name": "grayscale", "p": 0.5}}


def random_images(batch: int, channels: int = 3, size: int = 32, dtype=torch.uint8,
                  seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, channels, size, size), generator=generator,
                           dtype=torch.uint8)
    return images if dtype == torch.uint8 else images.to(dtype) / 255


def run(augmentation, images: torch.Tensor, labels: torch.Tensor | None = None):
    """Apply one augmentation as the pipeline would: (images, targets)."""
    if labels is None:
        labels = torch.arange(images.shape[0]) % NUM_CLASSES
    if isinstance(augmentation, LabelMixing):
        return augmentation(images, F.one_hot(labels, NUM_CLASSES).float())
    return augmentation(images), labels


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 28)])
def test_keeps_shape_dtype_and_value_range(name, dtype, channels, size):
    torch.manual_seed(0)
    images = random_images(8, channels, size, dtype)
    out, targets = run(build_augmentation(name), images)
    assert out.shape == images.shape
    assert out.dtype == dtype
    assert out.min() >= 0 and out.max() <= (255 if dtype == torch.uint8 else 1.0)
    assert torch.isfinite(out.float()).all()
    assert targets.shape[0] == 8


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_each_image_gets_its_own_draw(name):
    torch.manual_seed(0)
    images = random_images(1).expand(16, -1, -1, -1).contiguous()  # 16 identical images
    augmentation = build_augmentation(VISIBLE.get(name, name))
    out, targets = run(augmentation, images)
    if isinstance(augmentation, LabelMixing):
        # Identical images: the draws show in the targets. Each image's own-label weight
        # is its mixing share; one draw per batch would give (nearly) one value.
        own_share = targets[torch.arange(16), torch.arange(16)]
        assert own_share.unique().numel() >= 4
    else:
        assert out.flatten(1).unique(dim=0).shape[0] >= 2
        assert not torch.equal(out, images)


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_deterministic_under_a_fixed_seed(name):
    images = random_images(8)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        outputs.append(run(build_augmentation(name), images))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert torch.equal(outputs[0][1], outputs[1][1])


# -- the vectorized ones against torchvision's functional kernels --

def test_crop_equals_torchvision_pad_then_crop():
    images = random_images(6)
    crop = RandomCropWithPadding(padding=4)
    top = torch.tensor([0, 8, 3, 4, 8, 1])
    left = torch.tensor([0, 8, 7, 4, 0, 5])
    out = crop.crop(images, top, left)
    for b in range(6):
        reference = TF.crop(TF.pad(images[b], [4]), int(top[b]), int(left[b]), 32, 32)
        assert torch.equal(out[b], reference)


def test_random_crop_output_is_one_of_the_reference_crops():
    torch.manual_seed(0)
    images = random_images(8)
    out = RandomCropWithPadding(padding=2)(images)
    offsets_used = set()
    for b in range(8):
        padded = TF.pad(images[b], [2])
        matches = [(t, s) for t in range(5) for s in range(5)
                   if torch.equal(out[b], TF.crop(padded, t, s, 32, 32))]
        assert matches, "output is no padded crop of its own image"
        offsets_used.add(matches[0])
    assert len(offsets_used) >= 3


def test_flip_equals_torchvision_horizontal_flip():
    torch.manual_seed(0)
    images = random_images(16)
    mask = torch.tensor([True, False] * 8)
    out = RandomHorizontalFlip.flip(images, mask)
    for b in range(16):
        expected = TF.horizontal_flip(images[b]) if mask[b] else images[b]
        assert torch.equal(out[b], expected)
    random_out = RandomHorizontalFlip(p=0.5)(images)
    flipped = [torch.equal(random_out[b], TF.horizontal_flip(images[b])) for b in range(16)]
    kept = [torch.equal(random_out[b], images[b]) for b in range(16)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


def test_resized_crop_equals_torchvision_resized_crop():
    images = random_images(4, dtype=torch.float32)
    top, left = torch.tensor([0, 5, 16, 10]), torch.tensor([0, 3, 20, 2])
    box_h, box_w = torch.tensor([32, 20, 16, 22]), torch.tensor([32, 29, 12, 10])
    out = RandomResizedCrop().resized_crop(images, top, left, box_h, box_w)
    # torchvision resizes the cut-out box, so samples within half a pixel outside it repeat
    # the box's edge; here they see the true neighbouring pixel. Compare the rest.
    for b in range(4):
        reference = TF.resized_crop(images[b], int(top[b]), int(left[b]), int(box_h[b]),
                                    int(box_w[b]), [32, 32])
        position = torch.arange(32) + 0.5
        inside_rows = ((position * box_h[b] / 32 - 0.5 >= 0)
                       & (position * box_h[b] / 32 - 0.5 <= box_h[b] - 1))
        inside_cols = ((position * box_w[b] / 32 - 0.5 >= 0)
                       & (position * box_w[b] / 32 - 0.5 <= box_w[b] - 1))
        assert inside_rows.sum() >= 16 and inside_cols.sum() >= 16
        difference = (out[b] - reference)[:, inside_rows][:, :, inside_cols]
        assert difference.abs().max() < 1e-5
    assert torch.allclose(out[0], images[0], atol=1e-6)  # the whole image: unchanged


def test_resized_crop_boxes_follow_the_scale_range():
    torch.manual_seed(0)
    # A constant-per-column image: the crop's column span shows in the output's range.
    ramp = torch.linspace(0, 1, 32).expand(64, 1, 32, 32).contiguous()
    out = RandomResizedCrop(scale=(0.25, 0.5), ratio=(1.0, 1.0))(ramp)
    span = out[:, 0, 0, -1] - out[:, 0, 0, 0]  # about (box width - 1) / 31
    assert span.min() > 0.3 and span.max() < 0.75
    assert span.unique().numel() > 3


def test_rotation_equals_torchvision_rotate():
    images = random_images(4, dtype=torch.float32)
    angle = torch.tensor([10.0, -33.0, 0.0, 75.0])
    out = RandomRotation().rotate(images, angle)
    for b in range(4):
        reference = TF.rotate(images[b], float(angle[b]),
                              interpolation=TF.InterpolationMode.BILINEAR)
        assert (out[b] - reference).abs().max() < 1e-5


def test_affine_equals_torchvision_affine():
    images = random_images(4, dtype=torch.float32)
    angle = torch.tensor([10.0, -33.0, 0.0, 5.0])
    translate = torch.tensor([[2.0, -3.0], [0.0, 0.0], [5.0, 1.0], [-1.0, -4.0]])
    scale = torch.tensor([1.0, 1.2, 0.8, 1.0])
    shear = torch.tensor([[0.0, 0.0], [10.0, 0.0], [-20.0, 5.0], [0.0, 0.0]])
    out = RandomAffine().affine(images, angle, translate, scale, shear)
    for b in range(4):
        reference = TF.affine(images[b], angle=float(angle[b]), translate=translate[b].tolist(),
                              scale=float(scale[b]), shear=shear[b].tolist(),
                              interpolation=TF.InterpolationMode.BILINEAR)
        assert (out[b] - reference).abs().max() < 1e-5


def shifted(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """image [C, H, W] moved right by dx and down by dy pixels, zeros coming in."""
    height, width = image.shape[-2:]
    padded = F.pad(image, [4, 4, 4, 4])
    return padded[:, 4 - dy:4 - dy + height, 4 - dx:4 - dx + width]


def test_affine_default_translates_by_whole_pixels_within_range():
    torch.manual_seed(0)
    images = random_images(16, dtype=torch.float32)
    out = RandomAffine(translate=(0.125, 0.125))(images)
    assert torch.allclose(shifted(images[0], 2, -3),
                          TF.affine(images[0], 0.0, [2, -3], 1.0, [0.0, 0.0]))
    found = set()
    for b in range(16):  # each output is its image shifted by at most 4 pixels
        shifts = [(dx, dy) for dx in range(-4, 5) for dy in range(-4, 5)
                  if torch.allclose(out[b], shifted(images[b], dx, dy), atol=1e-5)]
        assert len(shifts) == 1
        found.add(shifts[0])
    assert len(found) > 5


def test_color_jitter_equals_torchvision_adjustments():
    images = random_images(4, dtype=torch.float32)
    brightness = torch.tensor([0.6, 1.0, 1.4, 1.2])
    contrast = torch.tensor([0.7, 1.3, 1.0, 0.9])
    saturation = torch.tensor([0.6, 1.4, 1.0, 0.0])
    hue = torch.tensor([0.1, -0.1, 0.5, -0.3])
    out = ColorJitter.jitter(images, brightness, contrast, saturation, hue)
    for b in range(4):
        reference = TF.adjust_brightness(images[b], float(brightness[b]))
        reference = TF.adjust_contrast(reference, float(contrast[b]))
        reference = TF.adjust_saturation(reference, float(saturation[b]))
        reference = TF.adjust_hue(reference, float(hue[b]))
        assert (out[b] - reference).abs().max() < 1e-5


def test_color_jitter_factor_ranges_follow_torchvision_convention():
    jitter = ColorJitter(brightness=0.4, contrast=[0.5, 0.9], saturation=1.5, hue=0.2)
    assert jitter.brightness == pytest.approx((0.6, 1.4))
    assert jitter.contrast == (0.5, 0.9)
    assert jitter.saturation == (0.0, 2.5)  # cut at zero
    assert jitter.hue == pytest.approx((-0.2, 0.2))


def test_grayscale_equals_torchvision_rgb_to_grayscale():
    images = random_images(4, dtype=torch.float32)
    out = RandomGrayscale(p=1.0)(images)
    assert torch.allclose(out, TF.rgb_to_grayscale(images, num_output_channels=3))


def test_rgb_shift_adds_one_offset_per_channel_and_image():
    torch.manual_seed(0)
    images = torch.full((16, 3, 8, 8), 0.5)
    out = RandomRGBShift(shift=0.1, p=1.0)(images)
    offset = out - images
    per_channel = offset[:, :, :1, :1]
    assert torch.allclose(offset, per_channel.expand_as(offset))
    assert per_channel.abs().max() <= 0.1 + 1e-6
    assert per_channel.flatten().unique().numel() == 48  # every channel of every image


def test_gaussian_noise_has_the_requested_spread():
    torch.manual_seed(0)
    images = torch.full((8, 3, 32, 32), 0.5)
    noise = GaussianNoise(sigma=0.05)(images) - images
    assert noise.mean().abs() < 0.005
    assert noise.std() == pytest.approx(0.05, rel=0.05)


def test_blur_equals_torchvision_gaussian_blur():
    images = random_images(4, dtype=torch.float32)
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0])
    out = GaussianBlur(kernel_size=5).blur(images, sigma)
    for b in range(4):
        reference = TF.gaussian_blur(images[b], [5, 5], [float(sigma[b])] * 2)
        assert (out[b] - reference).abs().max() < 1e-5


def erased_boxes(out: torch.Tensor) -> list[tuple[int, int]]:
    """(height, width) of the zeroed rectangle of each image; asserts it is a rectangle."""
    sizes = []
    for image in out:
        zero = (image == 0).all(dim=0)  # [H, W]
        rows, cols = zero.any(dim=1), zero.any(dim=0)
        height, width = int(rows.sum()), int(cols.sum())
        assert int(zero.sum()) == height * width  # one solid rectangle (or nothing)
        sizes.append((height, width))
    return sizes


def test_erasing_erases_one_box_in_the_scale_range_per_image():
    torch.manual_seed(0)
    images = torch.full((32, 3, 32, 32), 200, dtype=torch.uint8)
    sizes = erased_boxes(RandomErasing(p=1.0, scale=(0.05, 0.2))(images))
    areas = torch.tensor([h * w for h, w in sizes]) / 1024
    assert areas.min() > 0.03 and areas.max() < 0.23  # rounding of the sides aside
    assert len(set(sizes)) > 5


def test_cutout_erases_a_clipped_square_per_image():
    torch.manual_seed(0)
    images = torch.full((32, 3, 32, 32), 0.7)
    sizes = erased_boxes(Cutout(size=12)(images))
    assert all(6 <= h <= 12 and 6 <= w <= 12 for h, w in sizes)
    assert (12, 12) in sizes and len(set(sizes)) > 3


def test_probability_zero_leaves_images_unchanged():
    images = random_images(8)
    for spec in ({"name": "flip", "p": 0.0}, {"name": "color_jitter", "p": 0.0},
                 {"name": "grayscale", "p": 0.0}, {"name": "rgb_shift", "p": 0.0},
                 {"name": "noise", "p": 0.0}, {"name": "blur", "p": 0.0},
                 {"name": "erasing", "p": 0.0}, {"name": "cutout", "p": 0.0}):
        assert torch.equal(build_augmentation(spec)(images), images), spec


def test_pipeline_converts_to_float_once_and_keeps_integer_labels():
    images, labels = random_images(8), torch.arange(8)
    pixel_moves = build_augmentations(["crop", "flip", "cutout"], num_classes=8)
    out, targets = pixel_moves(images, labels)
    assert out.dtype == torch.uint8 and targets is labels
    with_color = build_augmentations(["crop", "color_jitter", "flip", "cutout"], num_classes=8)
    out, targets = with_color(images, labels)
    assert out.dtype == torch.float32 and out.max() <= 1.0 and targets is labels


def test_pipeline_with_mixing_returns_soft_targets():
    images, labels = random_images(8), torch.arange(8) % 4
    pipeline = build_augmentations(["crop", "mixup", "cutmix"], num_classes=4)
    out, targets = pipeline(images, labels)
    assert targets.shape == (8, 4) and targets.dtype == torch.float32
    assert torch.allclose(targets.sum(dim=1), torch.ones(8))
