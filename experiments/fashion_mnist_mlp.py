"""Train and test with the recipe in experiments/configs/fashion_mnist_mlp.yaml.

    python -m experiments.fashion_mnist_mlp [fit|validate|test|predict] [flags]
"""

from experiments import RECIPES
from src.cli.experiment import run_experiment
from src.datamodules.fashion_mnist import FashionMNISTDataModule


def main(args: list[str] | None = None):
    return run_experiment(FashionMNISTDataModule, RECIPES, "fashion_mnist_mlp", args)


if __name__ == "__main__":
    main()
