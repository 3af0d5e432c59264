"""Train and test with the recipe in experiments/configs/cifar_mlp.yaml.

    python -m experiments.cifar_mlp [--config FILE] [--print_config] [--section.key VALUE ...]
"""

from experiments import RECIPES
from src.cli.experiment import run_experiment
from src.datamodules.cifar10 import CIFAR10DataModule


def main(args: list[str] | None = None) -> dict[str, float] | None:
    return run_experiment(CIFAR10DataModule, RECIPES.config("cifar_mlp"), args)


if __name__ == "__main__":
    main()
