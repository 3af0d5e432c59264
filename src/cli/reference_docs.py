"""The reference pages in docs/reference/, written from the code's own declarations.

    python -m experiments.reference_docs          # rewrite the pages
    python -m experiments.reference_docs --check  # exit 1 if a page is out of date

- model_settings.md: every `--model.*` setting, from the settings groups of
  `ImageClassifier` (type, default, range, the choice it belongs to, help);
- augmentations.md: every name of `--data.augment`, from the augmentation registry
  (parameters and defaults, the first paragraph of each class's docstring, and whose
  code runs it).

A test checks that the committed pages equal what this writes, so they cannot drift.
"""

import inspect
from pathlib import Path

from torch import nn

from src.core.settings import reference_table
from src.datamodules.augment import AUGMENTATIONS, build_augmentation, parameter_defaults
from src.datamodules.augment.base import KorniaAugmentation
from src.datamodules.augment.policy import PerImagePolicy
from src.modules.classifier import SETTING_GROUPS

GENERATED = "<!-- Written by `python -m experiments.reference_docs`; do not edit by hand. -->"


def model_settings_page() -> str:
    sections = [
        GENERATED, "", "# Model settings (`--model.*`)", "",
        "Every setting of `ImageClassifier`, one flag each (or one key under `model:` in a "
        "`--config` file). An option used by one choice only (momentum by `optimizer sgd`) "
        "is refused when that choice is not made; a recipe's own options for the choice it "
        "made are dropped when you switch it with one flag.", ""]
    for group in SETTING_GROUPS:
        intro = (group.__doc__ or "").strip().split("\n\n")[0]
        sections += [f"## {group.__name__}", "", intro, "", reference_table(group), ""]
    return "\n".join(sections)


def implementation(augmentation: nn.Module) -> str:
    """Whose code runs an augmentation: kornia's module, torchvision's policy per image, or
    ours (why each of ours is kept: the comment next to its class)."""
    if isinstance(augmentation, KorniaAugmentation):
        return f"kornia `{type(augmentation.kornia).__name__}`"
    if isinstance(augmentation, PerImagePolicy):
        return f"torchvision `{type(augmentation.transform).__name__}`, per image"
    return "ours, batched"


def augmentations_page() -> str:
    lines = [
        GENERATED, "", "# Augmentations (`--data.augment`)", "",
        "An ordered list; each item a name (default parameters) or a mapping "
        "`{name: ..., <param>: value}`, e.g. `--data.augment '[crop, flip, {name: cutout, "
        "size: 8}]'`. Training batches only; pixel values in 0..1 units; every image its own "
        "random draw.", "",
        "| name | parameters (defaults) | what it does | runs |", "| --- | --- | --- | --- |"]
    for name, builder in AUGMENTATIONS.items():
        params = ", ".join(f"`{key}={value!r}`"
                           for key, value in parameter_defaults(name).items())
        summary = (inspect.getdoc(builder) or "").split("\n\n")[0].replace("\n", " ")
        lines.append(f"| `{name}` | {params or '-'} | {summary.replace('|', '/')} | "
                     f"{implementation(build_augmentation(name))} |")
    return "\n".join(lines) + "\n"


PAGES = {"model_settings.md": model_settings_page, "augmentations.md": augmentations_page}


def write_pages(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, page in PAGES.items():
        path = folder / name
        path.write_text(page())
        written.append(path)
    return written


def stale_pages(folder: Path) -> list[str]:
    """The pages whose committed text differs from what the declarations give."""
    return [name for name, page in PAGES.items()
            if not (folder / name).is_file() or (folder / name).read_text() != page()]
