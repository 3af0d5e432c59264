"""Train and test with the recipe in experiments/configs/fashion_mnist_mlp.yaml.

    python -m experiments.fashion_mnist_mlp [--config FILE] [--print_config] [--key VALUE]
"""

from experiments import RECIPES
from src.cli.experiment import run_experiment
from src.datamodules.fashion_mnist import FashionMNISTDataModule


def main(args: list[str] | None = None) -> dict[str, float] | None:
    return run_experiment(FashionMNISTDataModule, RECIPES.config("fashion_mnist_mlp"), args)


if __name__ == "__main__":
    main()
