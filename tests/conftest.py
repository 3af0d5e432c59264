"""Shared fixtures: tiny synthetic image folders (fast), the real CIFAR-10 (when present)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Assertions in the shared checks report their values, as in the test modules.
pytest.register_assert_rewrite("tests.checks")

NUM_CLASSES = 4
CLASS_NAMES = [f"class{i}" for i in range(NUM_CLASSES)]


def write_image_folder(root: Path, train_per_class: int = 24, test_per_class: int = 8,
                       size: int = 32, channels: int = 3, seed: int = 0) -> Path:
    """Write root/{train,test}/<class>/*.png with a learnable signal: each class has its
    own mean colour and a bright stripe at a class-specific row, plus noise."""
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                image = rng.normal(60 + 40 * label, 25, (size, size, channels))
                image[(label * size) // NUM_CLASSES, :, :] = 250
                pixels = image.clip(0, 255).astype(np.uint8)
                mode = "RGB" if channels == 3 else "L"
                Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
                    folder / f"{name}_{index:04d}.png")
    return root


@pytest.fixture(scope="session", autouse=True)
def user_cache_folder(tmp_path_factory) -> Path:
    """The decoded-data cache goes to $XDG_CACHE_HOME: a folder of this test session's,
    never the user's own ~/.cache (subprocesses started by tests inherit it)."""
    folder = tmp_path_factory.mktemp("xdg_cache")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """A 4-class, 32x32 RGB image folder: 24 train and 8 test images per class."""
    return write_image_folder(tmp_path_factory.mktemp("tiny_images"))


@pytest.fixture
def fresh_image_folder(tmp_path) -> Path:
    """Like `image_folder`, but private to one test (safe to damage)."""
    return write_image_folder(tmp_path / "images")


def real_data_dir(env_var: str, name: str, shared_folder: str) -> Path:
    """The real image folders named by $<env_var>; the calling test skips without them."""
    value = os.environ.get(env_var)
    if not value or not (Path(value) / "train").is_dir():
        pytest.skip(f"real {name} not available: set {env_var} to an image-folder copy "
                    f"(../shared/data/{shared_folder}/extract.sh DEST)")
    return Path(value)


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    return real_data_dir("CIFAR10_DIR", "CIFAR-10", "cifar10")


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    return real_data_dir("FASHION_MNIST_DIR", "Fashion-MNIST", "fashion_mnist")
