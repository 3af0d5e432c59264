"""`--dataset NAME` plus the datamodule's own `--data.*` flags, for the tools that work on
any data set (explore_data, evaluate). The flags are those of the training entry points'
`data:` section, so a run's settings can be repeated word for word."""

from jsonargparse import ArgumentParser, Namespace

from src.datamodules.base import ImageDataModule
from src.datamodules.registry import DATAMODULES, datamodule_class


def add_data_arguments(parser: ArgumentParser, default_dataset: str | None) -> None:
    parser.add_argument("--dataset", type=str | None, default=default_dataset,
                        help=f"data set: {', '.join(DATAMODULES)}.")
    parser.add_class_arguments(ImageDataModule, "data")


def build_datamodule(config: Namespace) -> ImageDataModule:
    return datamodule_class(config.dataset)(**config.data.as_dict())
