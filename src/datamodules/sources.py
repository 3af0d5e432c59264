"""Read a data set split into memory as one uint8 tensor.

Two sources:
- an image-folder tree `<root>/<split>/<class>/<image>` (our local CIFAR-10 copy, or any
  custom data set); decoded once, then cached on disk with a fingerprint of the files and
  a checksum of the pixels, so later runs skip decoding and a stale or corrupt cache is
  rebuilt;
- torchvision's own download (CIFAR10, FashionMNIST), whose files already hold arrays.
"""

import hashlib
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image, UnidentifiedImageError

from src.core.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
CACHE_FORMAT = 2  # 2: the checksum covers the labels too


@dataclass
class ImageSet:
    images: torch.Tensor  # [N, C, H, W] uint8
    labels: torch.Tensor  # [N] int64
    classes: list[str]


def list_classes(split_dir: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(split_dir)
                  if entry.is_dir() and not entry.name.startswith("."))


def list_image_files(class_dir: Path) -> list[os.DirEntry]:
    return sorted((entry for entry in os.scandir(class_dir)
                   if entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda entry: entry.name)


def check_folder_layout(root: Path, splits: tuple[str, ...] = ("train", "test")) -> list[str]:
    """Check `root/<split>/<class>/` for every split; return the class names.

    Cheap (directory listings only): it runs before anything is written, so a wrong
    path fails at once with one line.
    """
    missing = [split for split in splits if not (root / split).is_dir()]
    if missing:
        raise DataError(
            f"{root} is not an image-folder data set: missing {', '.join(missing)}/ "
            f"(expected {root}/train/<class>/*.png and {root}/test/<class>/*.png)"
        )
    classes = list_classes(root / splits[0])
    if len(classes) < 2:
        raise DataError(f"{root / splits[0]} holds {len(classes)} class folders; "
                        f"an image-folder data set needs at least 2 (one folder per class)")
    for split in splits:
        split_classes = list_classes(root / split)
        if split_classes != classes:
            only_here = sorted(set(split_classes) - set(classes))
            absent = sorted(set(classes) - set(split_classes))
            raise DataError(
                f"{root / split} has different class folders from {root / splits[0]}: "
                f"missing {absent or 'none'}, extra {only_here or 'none'}"
            )
        for name in classes:
            if not any(True for _ in list_image_files(root / split / name)):
                raise DataError(f"class folder {root / split / name} holds no images "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return classes


@contextmanager
def opened_image(path: str | Path) -> Iterator[Image.Image]:
    """PIL's image of `path`; a file PIL cannot read, then or while it is decoded inside
    the block, ends in one DataError line naming the file."""
    try:
        with Image.open(path) as image:
            yield image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot decode image {path}: {error}; replace or delete the file"
                        ) from None


def decode_image(path: str) -> np.ndarray:
    with opened_image(path) as image:
        array = np.asarray(image.convert("RGB") if image.mode == "P" else image)
    if array.dtype != np.uint8:
        raise DataError(f"image {path} has {array.dtype} pixels (PIL mode {image.mode}); the "
                        f"data sets here are 8-bit: convert it to 8-bit RGB or grayscale")
    return array if array.ndim == 3 else array[:, :, None]  # [H, W, C]


def _fingerprint(files: list[tuple[str, int, int]]) -> str:
    digest = hashlib.sha256()
    for relative_path, size, mtime_ns in files:
        digest.update(f"{relative_path}\0{size}\0{mtime_ns}\n".encode())
    return digest.hexdigest()


def _checksum(images: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.blake2b(images.contiguous().numpy().data, digest_size=16)
    digest.update(labels.contiguous().numpy().data)
    return digest.hexdigest()


# Up to this many pixels an image is decoded in this thread. For CIFAR's 32x32 PNGs, PIL's
# per-image Python work (holding the GIL) outweighs its C decoding: on 2 cores the 50,000
# training images took 14.6 s with 8 threads and 8.1 s in one. Larger images keep the
# thread pool, whose C decoding runs without the GIL (not measured here).
SMALL_IMAGE_PIXELS = 64 * 64


def decode_folder(split_dir: Path, classes: list[str]) -> ImageSet:
    """Decode every image of `split_dir/<class>/`: small ones in this thread, larger ones
    with a thread pool."""
    paths, labels = [], []
    for label, name in enumerate(classes):
        for entry in list_image_files(split_dir / name):
            paths.append(entry.path)
            labels.append(label)
    first = decode_image(paths[0])
    if first.shape[0] * first.shape[1] <= SMALL_IMAGE_PIXELS:
        arrays = [first, *map(decode_image, paths[1:])]
    else:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            arrays = [first, *pool.map(decode_image, paths[1:])]
    expected = arrays[0].shape
    for path, array in zip(paths, arrays, strict=True):
        if array.shape != expected:
            raise DataError(
                f"image {path} is {array.shape[1]}x{array.shape[0]} with {array.shape[2]} "
                f"channel(s), but {paths[0]} is {expected[1]}x{expected[0]} with "
                f"{expected[2]}; all images of a data set must share size and mode"
            )
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images=images, labels=torch.tensor(labels, dtype=torch.int64),
                    classes=classes)


def default_cache_dir(data_dir: Path) -> Path:
    """Where the decoded images of `data_dir` are cached by default: the user's cache
    folder ($XDG_CACHE_HOME, else ~/.cache), one subfolder per data folder."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    resolved = str(Path(data_dir).expanduser().resolve())
    key = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    return root / "lightning-image-classification" / f"{Path(resolved).name}-{key}"


def load_folder_split(root: Path, split: str, classes: list[str],
                      cache_dir: Path | None) -> ImageSet:
    """Load `root/split` from the decoded cache when it is current, else decode (and cache)."""
    split_dir = root / split
    files = [(f"{name}/{entry.name}", entry.stat().st_size, entry.stat().st_mtime_ns)
             for name in classes for entry in list_image_files(split_dir / name)]
    fingerprint = _fingerprint(files)
    cache_file = cache_dir / f"{split}-uint8.pt" if cache_dir else None
    if cache_file is not None and cache_file.exists():
        cached = _read_cache(cache_file, fingerprint, len(files), classes)
        if cached is not None:
            rank_zero_info(f"Loaded {len(files):,} decoded {split} images from the cache "
                           f"{cache_file}")
            return cached
    where = f"; they are cached in {cache_file} for later runs" if cache_file else ""
    rank_zero_info(f"Decoding {len(files):,} {split} images of {split_dir} (first run "
                   f"only){where}")
    image_set = decode_folder(split_dir, classes)
    if cache_file is not None:
        _write_cache(cache_file, image_set, fingerprint)
    return image_set


def _read_cache(cache_file: Path, fingerprint: str, count: int,
                classes: list[str]) -> ImageSet | None:
    """Return the cached split, or None (with a warning) if it is stale or corrupt.

    Stale: the image files changed (names, sizes or modification times: the fingerprint).
    Corrupt: unreadable, or the tensors disagree with their recorded shape, count or
    checksum.
    """
    try:
        cached = torch.load(cache_file, map_location="cpu", weights_only=True)
        images, labels = cached["images"], cached["labels"]
        valid = (cached["format"] == CACHE_FORMAT and cached["fingerprint"] == fingerprint
                 and list(cached["classes"]) == classes
                 and images.dtype == torch.uint8 and images.ndim == 4
                 and labels.dtype == torch.int64 and labels.ndim == 1
                 and len(images) == count == len(labels)
                 and cached["checksum"] == _checksum(images, labels))
    except Exception as error:  # any unreadable cache is simply rebuilt
        warnings.warn(f"decoded-data cache {cache_file} is unreadable ({error}); rebuilding it",
                      stacklevel=2)
        return None
    if not valid:
        warnings.warn(f"decoded-data cache {cache_file} does not match the image files; "
                      f"rebuilding it", stacklevel=2)
        return None
    return ImageSet(images=images, labels=labels, classes=list(cached["classes"]))


def _write_cache(cache_file: Path, image_set: ImageSet, fingerprint: str) -> None:
    payload = {
        "format": CACHE_FORMAT,
        "fingerprint": fingerprint,
        "checksum": _checksum(image_set.images, image_set.labels),
        "images": image_set.images,
        "labels": image_set.labels,
        "classes": image_set.classes,
    }
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".partial-{os.getpid()}")
        torch.save(payload, partial)
        os.replace(partial, cache_file)  # atomic: readers never see a half-written cache
    except OSError as error:
        warnings.warn(f"could not write the decoded-data cache to {cache_file} ({error}); "
                      f"images will be decoded again next run; set --data.cache_dir to a "
                      f"writable folder", stacklevel=2)


def load_torchvision_split(dataset_class: type, root: Path, train: bool, download: bool,
                           display_name: str, env_var: str) -> ImageSet:
    """Load a torchvision data set split (downloading it when asked) as uint8 tensors."""
    existed = root.exists()
    try:
        dataset = dataset_class(root=str(root), train=train, download=download)
    except (RuntimeError, OSError) as error:  # not found / URLError / socket errors
        if not existed and root.is_dir() and not any(root.iterdir()):
            root.rmdir()  # a failed download leaves no empty folder behind
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        how = "the download failed" if download else "downloading is off (--data.download false)"
        raise DataError(
            f"{display_name} not found in {root} (looked for image folders {root}/train/<class>/"
            f" and torchvision's files) and {how}: {reason}. Point --data.data_dir or "
            f"{env_var} at a copy"
        ) from None
    data = torch.as_tensor(np.asarray(dataset.data))
    images = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # [N,C,H,W]
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    return ImageSet(images=images.contiguous(), labels=labels, classes=list(dataset.classes))
