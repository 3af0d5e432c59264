"""The decoded-image cache is used when current and rebuilt, with correct content, when
stale (image files added, removed or changed) or corrupt (unreadable, truncated, or
tensors that disagree with their count or checksum)."""

import os

import numpy as np
import pytest
import torch
from conftest import write_image_folder
from PIL import Image

from src.datamodules import sources
from src.datamodules.sources import check_folder_layout, decode_folder, load_folder_split


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(tmp_path / "images", train_per_class=5, test_per_class=2)


def load_train(root):
    return load_folder_split(root, "train", check_folder_layout(root), root / ".cache")


def decoded_fresh(root):
    return decode_folder(root / "train", check_folder_layout(root))


def cache_file(root):
    return root / ".cache" / "train-uint8.pt"


def assert_same(image_set, expected):
    assert torch.equal(image_set.images, expected.images)
    assert torch.equal(image_set.labels, expected.labels)
    assert image_set.classes == expected.classes


def forbid_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded although the cache is current")
    monkeypatch.setattr(sources, "decode_folder", fail)


def test_current_cache_is_used(folder, monkeypatch):
    first = load_train(folder)
    assert cache_file(folder).is_file()
    forbid_decoding(monkeypatch)
    assert_same(load_train(folder), first)


def overwrite_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])


def rewrite_payload(path, change):
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


def flip_one_pixel(payload):
    payload["images"][0, 0, 0, 0] ^= 1  # the stored checksum no longer matches


def relabel_one_image(payload):
    payload["labels"][0] = (payload["labels"][0] + 1) % 4


def drop_last_image(payload):
    # A consistent but short cache: checksum recomputed, so only the count betrays it.
    payload["images"] = payload["images"][:-1].clone()
    payload["labels"] = payload["labels"][:-1].clone()
    payload["checksum"] = sources._checksum(payload["images"], payload["labels"])


@pytest.mark.parametrize("damage", [
    overwrite_middle,
    truncate,
    lambda path: path.write_bytes(b""),
    lambda path: rewrite_payload(path, flip_one_pixel),
    lambda path: rewrite_payload(path, relabel_one_image),
    lambda path: rewrite_payload(path, drop_last_image),
], ids=["overwritten", "truncated", "empty", "pixel", "label", "count"])
def test_corrupt_cache_is_rebuilt(folder, monkeypatch, damage):
    load_train(folder)
    damage(cache_file(folder))
    with pytest.warns(UserWarning, match="rebuilding it"):
        rebuilt = load_train(folder)
    assert_same(rebuilt, decoded_fresh(folder))
    forbid_decoding(monkeypatch)  # and the rewritten cache is current again
    assert_same(load_train(folder), rebuilt)


def test_added_image_makes_cache_stale(folder):
    before = load_train(folder)
    Image.new("RGB", (32, 32), (255, 0, 0)).save(folder / "train" / "class2" / "extra.png")
    with pytest.warns(UserWarning, match="does not match the image files"):
        after = load_train(folder)
    assert len(after.labels) == len(before.labels) + 1
    assert_same(after, decoded_fresh(folder))


def test_removed_image_makes_cache_stale(folder):
    before = load_train(folder)
    (folder / "train" / "class1" / "class1_0000.png").unlink()
    with pytest.warns(UserWarning, match="does not match the image files"):
        after = load_train(folder)
    assert len(after.labels) == len(before.labels) - 1
    assert_same(after, decoded_fresh(folder))


def test_changed_image_makes_cache_stale(folder):
    load_train(folder)
    changed = folder / "train" / "class0" / "class0_0001.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(changed)
    with pytest.warns(UserWarning, match="does not match the image files"):
        after = load_train(folder)
    assert_same(after, decoded_fresh(folder))
    assert (after.images == torch.tensor([1, 2, 3])[:, None, None]).all(dim=(1, 2, 3)).any()


@pytest.mark.parametrize("size", [32, 80])  # decoded in this thread / by the thread pool
def test_decoded_folder_holds_every_image_with_its_label_in_order(tmp_path, size):
    assert (size * size <= sources.SMALL_IMAGE_PIXELS) == (size == 32)
    root = write_image_folder(tmp_path / "images", train_per_class=3, test_per_class=1,
                              size=size)
    classes = check_folder_layout(root)
    decoded = decode_folder(root / "train", classes)
    files = [(label, path) for label, name in enumerate(classes)
             for path in sorted((root / "train" / name).iterdir())]
    assert decoded.labels.tolist() == [label for label, _ in files]
    for image, (_, path) in zip(decoded.images, files, strict=True):
        with Image.open(path) as pil:  # [H, W, C] -> [C, H, W]
            assert torch.equal(image, torch.from_numpy(np.asarray(pil)).permute(2, 0, 1))
