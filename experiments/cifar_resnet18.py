"""Train and test with the recipe in experiments/configs/cifar_resnet18.yaml.

    python -m experiments.cifar_resnet18 [fit|validate|test|predict] [flags]
"""

from experiments import RECIPES
from src.cli.experiment import run_experiment
from src.datamodules.cifar10 import CIFAR10DataModule


def main(args: list[str] | None = None):
    return run_experiment(CIFAR10DataModule, RECIPES, "cifar_resnet18", args)


if __name__ == "__main__":
    main()
