"""`python -m experiments.sweep --help`: see src/cli/sweep.py."""

from experiments import RECIPES
from src.cli import sweep


def main(argv: list[str] | None = None):
    return sweep.main(argv, RECIPES)


if __name__ == "__main__":
    main()
