"""`python -m experiments.explore_data --help`: see src/cli/explore_data.py."""

from src.cli.explore_data import main

if __name__ == "__main__":
    main()
