"""`python -m experiments.evaluate --help`: see src/cli/evaluate.py."""

from src.cli.evaluate import main

if __name__ == "__main__":
    main()
