"""End-to-end: the entry point trains and tests on a tiny image folder."""

from experiments import cifar_mlp
from tests.checks import assert_tested_checkpoint, best_checkpoint


def test_cifar_mlp_entry_point_trains_and_tests(image_folder, tmp_path):
    results = cifar_mlp.main([
        "--data.data_dir", str(image_folder), "--data.batch_size", "16",
        "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false", "--model.hidden_widths", "[32]",
    ])
    run = tmp_path / "runs" / "version_0"
    accuracy = assert_tested_checkpoint(results, best_checkpoint(run), image_folder)
    assert accuracy >= 0.75  # 4 well separated classes (chance: 0.25)
    assert (run / "config.yaml").is_file()
