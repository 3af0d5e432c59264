"""Look at the data before training: shapes, pixel range, statistics, class balance.

    python -m experiments.explore_data [--dataset cifar10|fashion_mnist] [--data.* ...]
        [--out_dir DIR] [--samples_per_class N]

Writes into --out_dir (default runs/explore_data/<dataset>): data_summary.md (the
numbers as tables), data_summary.json, samples.png (random training images, one row per
class) and class_histogram.png (images per class in train/val/test). The split into
train/val follows the same --data flags as training (e.g. --data.val_fraction), so the
statistics are exactly the ones the training run normalizes with.
"""

import json
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser

from src.cli.boundary import parse_in_one_line, run_command
from src.cli.data_flags import add_data_arguments, build_datamodule
from src.core.errors import check_range
from src.datamodules.summary import DataSummary, summarize, to_markdown
from src.reporting.plots import plot_class_histogram, plot_sample_grid


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m experiments.explore_data", exit_on_error=False,
                            description=__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile)
    add_data_arguments(parser, default_dataset="cifar10")
    parser.add_argument("--out_dir", type=str | None, default=None,
                        help="output folder; default runs/explore_data/<dataset>.")
    parser.add_argument("--samples_per_class", type=int, default=8,
                        help="images per class in samples.png.")
    return parser


def explore(args: list[str] | None = None) -> DataSummary:
    config = parse_in_one_line(build_parser(), args)
    check_range("samples_per_class", config.samples_per_class, 1)
    datamodule = build_datamodule(config)
    datamodule.prepare_data()
    datamodule.setup("fit")
    summary = summarize(datamodule, config.dataset)

    out_dir = Path(config.out_dir or f"runs/explore_data/{config.dataset}")
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(summary)
    (out_dir / "data_summary.md").write_text(markdown)
    (out_dir / "data_summary.json").write_text(json.dumps(summary.as_dict(), indent=2))
    train = datamodule.train_set
    plot_sample_grid(train.images, train.labels, summary.classes, config.samples_per_class,
                     out_dir / "samples.png", seed=datamodule.hparams.split_seed)
    plot_class_histogram(summary.class_counts, summary.classes, out_dir / "class_histogram.png")
    print(markdown)
    print(f"Wrote data_summary.md, data_summary.json, samples.png and class_histogram.png "
          f"to {out_dir}", flush=True)
    return summary


def main(args: list[str] | None = None) -> DataSummary:
    return run_command(lambda: explore(args))


if __name__ == "__main__":
    main()
