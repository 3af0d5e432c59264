"""Hyperparameter sweeps and multi-seed runs over the entry points (experiments/sweep.py,
experiments/seeds.py): search spaces, trial running, pruning, reports, W&B export."""
