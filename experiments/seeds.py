"""`python -m experiments.seeds --help`: see src/cli/seeds.py."""

from experiments import RECIPES
from src.cli import seeds


def main(argv: list[str] | None = None):
    return seeds.main(argv, RECIPES)


if __name__ == "__main__":
    main()
