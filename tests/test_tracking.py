"""W&B never blocks or breaks training: no key or no server means an offline run.

Only loopback addresses are used: a closed port stands in for an unreachable server.
"""

import csv
import socket

import pytest
from entry_points import run_entry_point

from src.core.errors import ConfigError
from src.runs.tracking import resolve_wandb_mode, wandb_server_reachable

CLOSED_PORT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there
FAKE_KEY = "0" * 40


@pytest.fixture
def wandb_env(monkeypatch, tmp_path):
    """No W&B settings from the machine: no key, no netrc, no mode."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    return monkeypatch


def test_probe_uses_the_port_of_the_base_url(wandb_env):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        wandb_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
        assert wandb_server_reachable(timeout_s=3)
    assert not wandb_server_reachable(timeout_s=3)  # closed now


def test_auto_without_api_key_is_offline(wandb_env):
    assert resolve_wandb_mode("auto") == "offline"


def test_auto_with_unreachable_server_is_offline(wandb_env):
    wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    wandb_env.setenv("WANDB_BASE_URL", CLOSED_PORT_URL)
    assert resolve_wandb_mode("auto") == "offline"


def test_auto_with_key_and_server_is_online(wandb_env):
    wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    with socket.create_server(("127.0.0.1", 0)) as server:
        wandb_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert resolve_wandb_mode("auto") == "online"


def test_explicit_online_without_server_fails_in_one_line(wandb_env):
    wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    wandb_env.setenv("WANDB_BASE_URL", CLOSED_PORT_URL)
    with pytest.raises(ConfigError, match=r"^--wandb.mode online: 127.0.0.1:9 is out of reach"):
        resolve_wandb_mode("online")


def test_wandb_mode_offline_env_wins(wandb_env):
    wandb_env.setenv("WANDB_MODE", "offline")
    wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    assert resolve_wandb_mode("online") == "offline"


def wandb_run_env(tmp_path, **extra: str) -> dict[str, str | None]:
    """No W&B settings from the machine; W&B's settings and caches inside the test folder."""
    return {"WANDB_API_KEY": None, "WANDB_MODE": None, "WANDB_BASE_URL": None,
            "HOME": str(tmp_path), "NETRC": str(tmp_path / ".netrc"),
            "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
            "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
            "WANDB_DATA_DIR": str(tmp_path / "wandb_data"), "WANDB_SILENT": "true", **extra}


def set_wandb_run_env(monkeypatch, tmp_path, **extra: str) -> None:
    """`wandb_run_env` in this process (the None entries are already unset by wandb_env)."""
    for name, value in wandb_run_env(tmp_path, **extra).items():
        if value is not None:
            monkeypatch.setenv(name, value)


def train_with_wandb(image_folder, out_dir, env):
    flags = ["--data.data_dir", str(image_folder), "--trainer.default_root_dir", str(out_dir),
             "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
             "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[8]",
             "--data.batch_size", "16", "--wandb.enabled", "true"]
    result = run_entry_point("experiments.cifar_mlp", flags, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_local_records(out_dir):
    offline_runs = list((out_dir / "version_0" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert list(offline_runs[0].glob("run-*.wandb"))  # the run's data, for `wandb sync`
    with open(out_dir / "version_0" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert any(row.get("test/acc") for row in rows)


def test_unreachable_server_falls_back_to_offline_run(image_folder, tmp_path):
    out_dir = tmp_path / "run"
    env = wandb_run_env(tmp_path, WANDB_API_KEY=FAKE_KEY, WANDB_BASE_URL=CLOSED_PORT_URL)
    result = train_with_wandb(image_folder, out_dir, env)
    assert "W&B: 127.0.0.1:9 is out of reach; logging offline" in result.stderr
    assert_local_records(out_dir)
    # The end of the run says where the offline run is and how to upload it.
    [offline_run] = (out_dir / "version_0" / "wandb").glob("offline-run-*")
    assert (f"W&B run logged offline in {offline_run}; upload it with: wandb sync "
            f"{offline_run}") in result.stdout


@pytest.mark.slow
def test_offline_mode_keeps_local_run_files(image_folder, tmp_path):
    out_dir = tmp_path / "run"
    train_with_wandb(image_folder, out_dir, wandb_run_env(tmp_path, WANDB_MODE="offline"))
    assert_local_records(out_dir)


@pytest.mark.slow  # starts W&B's service process
def test_group_and_name_reach_the_wandb_run(wandb_env, tmp_path):
    # A study's runs share one W&B group (--wandb.group); offline, so nothing leaves here.
    from lightning.pytorch.loggers import WandbLogger

    from src.runs.tracking import build_loggers

    set_wandb_run_env(wandb_env, tmp_path)
    run_dir = tmp_path / "run"
    loggers = build_loggers(run_dir=run_dir, wandb_enabled=True, wandb_project="studies",
                            wandb_name="lr 0.01 (good)", wandb_mode="offline",
                            wandb_group="study_learning_rate-20250101")
    wandb_logger = next(logger for logger in loggers if isinstance(logger, WandbLogger))
    try:
        run = wandb_logger.experiment
        assert run.group == "study_learning_rate-20250101"
        assert run.name == "lr 0.01 (good)"
    finally:
        run.finish()


@pytest.mark.slow  # starts W&B's service process
def test_runs_in_one_process_get_their_own_wandb_runs(wandb_env, image_folder, tmp_path):
    # In-process sweep trials and study variants: Lightning leaves the W&B run open after
    # fit and test, so without finishing it the second run would log into the first.
    import wandb

    from experiments import cifar_mlp

    set_wandb_run_env(wandb_env, tmp_path, WANDB_MODE="offline")
    for run in ("first", "second"):
        cifar_mlp.main([
            "--data.data_dir", str(image_folder), "--run_dir", str(tmp_path / run),
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[8]",
            "--data.batch_size", "16", "--wandb.enabled", "true", "--wandb.name", run])
        assert wandb.run is None
    ids = [(tmp_path / run / "wandb_run_id").read_text().strip() for run in ("first", "second")]
    assert ids[0] != ids[1]
    for run, run_id in zip(("first", "second"), ids, strict=True):
        offline = list((tmp_path / run / "wandb").glob("offline-run-*"))
        assert [path.name.rsplit("-", 1)[1] for path in offline] == [run_id]


@pytest.mark.slow  # starts W&B's service process
def test_finders_alone_leave_no_wandb_run_open(wandb_env, image_folder, tmp_path):
    # --tune.* without --tune.apply trains nothing, but the range test logs through W&B.
    import wandb

    from experiments import cifar_mlp

    set_wandb_run_env(wandb_env, tmp_path, WANDB_MODE="offline")
    cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--run_dir", str(tmp_path / "run"),
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[8]",
        "--data.batch_size", "16", "--wandb.enabled", "true", "--tune.lr_find", "true",
        "--tune.lr_find_steps", "13"])
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert wandb.run is None
