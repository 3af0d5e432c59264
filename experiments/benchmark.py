"""`python -m experiments.benchmark --help`: see src/cli/benchmark.py."""

from experiments import RECIPES
from src.cli import benchmark


def main(argv: list[str] | None = None):
    return benchmark.main(argv, RECIPES)


if __name__ == "__main__":
    main()
