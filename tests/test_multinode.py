"""Multi-node training through torchrun and Lightning's TorchElasticEnvironment: two
"nodes" of one process each, on this machine, over loopback with gloo."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_train_and_report_the_same_test_accuracy(image_folder, tmp_path):
    port = free_port()
    flags = ["--trainer.accelerator", "cpu", "--trainer.num_nodes", "2",
             "--trainer.devices", "1", "--trainer.strategy", "ddp",
             "--data.data_dir", str(image_folder), "--data.batch_size", "8",
             "--model.hidden_widths", "[16]", "--trainer.max_epochs", "2",
             "--trainer.default_root_dir", str(tmp_path / "runs"),
             "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false"]
    # One thread per process (two processes share the cores); loopback only.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
         "--nproc_per_node", "1", "--node_rank", str(rank), "--master_addr", "127.0.0.1",
         "--master_port", str(port), "-m", "tests.multinode_entry", *flags],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=600)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-3000:]
    accuracies = {}
    for output in outputs:
        for rank, value in re.findall(r"RANK (\d) TEST_ACC ([0-9.]+)", output):
            accuracies[int(rank)] = float(value)
    assert sorted(accuracies) == [0, 1], outputs
    assert accuracies[0] == accuracies[1]  # test metrics are synced over both nodes
    assert "Test accuracy:" in outputs[0] and "Test accuracy:" not in outputs[1]
