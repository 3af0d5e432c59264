"""Multi-node training through torchrun and Lightning's own cluster detection
(TorchElasticEnvironment): two "nodes" of one process each, on this machine, over loopback
with gloo, started exactly as a user starts them (one torchrun per node)."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.multinode_entry import REPORT_PREFIX

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_nodes(commands: list[list[str]], logs: list[Path], env: dict[str, str],
              timeout: float) -> list[int]:
    """Start every command, wait for all; if one fails, stop the others (they would wait
    for it at the next collective forever). Output goes to files: a full pipe would block."""
    handles = [log.open("w") for log in logs]
    nodes = [subprocess.Popen(command, cwd=REPO, env=env, stdout=handle,
                              stderr=subprocess.STDOUT)
             for command, handle in zip(commands, handles, strict=True)]
    deadline = time.monotonic() + timeout  # guards against a hang; no duration is asserted
    try:
        while any(node.poll() is None for node in nodes) and time.monotonic() < deadline:
            if any(node.returncode not in (None, 0) for node in nodes):
                break
            time.sleep(0.5)
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait()
        for handle in handles:
            handle.close()
    return [node.returncode for node in nodes]


@pytest.mark.slow
def test_two_nodes_train_as_one_job(image_folder, tmp_path):
    port = free_port()
    run_dir = tmp_path / "run"
    flags = ["--trainer.accelerator", "cpu", "--trainer.num_nodes", "2",
             "--trainer.devices", "1", "--trainer.strategy", "ddp",
             # torchrun starts every process itself: they must be told one shared run dir.
             "--run_dir", str(run_dir),
             "--trainer.callbacks+=tests.multinode_entry.RankReport",
             "--data.data_dir", str(image_folder), "--data.batch_size", "8",
             "--model.hidden_widths", "[16]", "--trainer.max_epochs", "2",
             "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false"]
    commands = [[sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                 "--nproc_per_node", "1", "--node_rank", str(node), "--master_addr",
                 "127.0.0.1", "--master_port", str(port), "-m", "tests.multinode_entry",
                 *flags] for node in (0, 1)]
    # One thread per process (the processes share the cores); loopback only.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "PYTHONPATH": str(REPO)}
    logs = [tmp_path / f"node{node}.log" for node in (0, 1)]
    return_codes = run_nodes(commands, logs, env, timeout=300)
    outputs = [log.read_text() for log in logs]
    for code, output in zip(return_codes, outputs, strict=True):
        assert code == 0, output[-3000:]

    reports = []
    for output in outputs:
        lines = [line for line in output.splitlines() if line.startswith(REPORT_PREFIX)]
        assert len(lines) == 1, output[-3000:]
        reports.append(json.loads(lines[0][len(REPORT_PREFIX):]))
    # Lightning read the torchrun environment: one job of two ranks, one per node.
    assert [(r["global_rank"], r["node_rank"], r["world_size"]) for r in reports] == [
        (0, 0, 2), (1, 1, 2)]
    assert {r["environment"] for r in reports} == {"TorchElasticEnvironment"}
    # The two nodes split the training set: every image once per epoch, none twice.
    num_train = json.loads((run_dir / "run_info.json").read_text())["data"]["num_train"]
    seen = [r["first_epoch_images"] for r in reports]
    assert sum(seen) == num_train and abs(seen[0] - seen[1]) <= 1
    # Gradients were averaged over the nodes: both end with the same weights ...
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
    # ... and the test metric is synced over both shards of the test set.
    accuracies = [float(re.search(r"TEST_ACC ([0-9.]+)", output).group(1))
                  for output in outputs]
    assert accuracies[0] == accuracies[1]
    assert "Test accuracy:" in outputs[0] and "Test accuracy:" not in outputs[1]
