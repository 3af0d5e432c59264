"""Entry point of the 2-node torchrun test (tests/test_multinode.py): trains and tests with
experiments.cifar_mlp, then prints this rank's test accuracy (the CLI prints on rank 0
only)."""

import os
import sys

from experiments import cifar_mlp

if __name__ == "__main__":
    results = cifar_mlp.main(sys.argv[1:])
    print(f"RANK {os.environ['RANK']} TEST_ACC {results['test/acc']:.6f}", flush=True)
