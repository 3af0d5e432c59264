"""The lectures' studies (experiments/study_*.py): a few variants of one training run,
each through an entry point, ending in a table, a CSV and a plot."""
