"""End-to-end: the entry point trains and tests on a tiny image folder."""

from experiments import cifar_mlp


def test_cifar_mlp_entry_point_trains_and_tests(image_folder, tmp_path):
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[32]",
    ])
    assert 0.0 <= results["test/acc"] <= 1.0
    assert (tmp_path / "runs" / "version_0" / "config.yaml").is_file()
