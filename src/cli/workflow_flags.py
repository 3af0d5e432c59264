"""The research-workflow callbacks of every training entry point, each a flag group:

--initial_loss_check.*  first-batch loss vs. uniform predictions (on; InitialLossCheck)
--overfit.*             overfit one sample / one batch instead of training (OverfitCheck)
--activation_stats.*    per-layer activation/gradient statistics (off: every_n_steps 0)
--learning_curves.*     learning_curves.png/.csv in the run folder (on)
--test_confusion.*      test_confusion.png/.csv, test_per_class.csv after testing (on)
--epoch_timer.*         time/train_epoch_s: seconds of each training epoch (on; EpochTimer)
"""

from lightning.pytorch.cli import LightningArgumentParser

from src.callbacks.activation_stats import ActivationStats
from src.callbacks.confusion import TestConfusionMatrix
from src.callbacks.epoch_timer import EpochTimer
from src.callbacks.initial_loss import InitialLossCheck
from src.callbacks.learning_curves import LearningCurves
from src.callbacks.overfit import OverfitCheck


def add_workflow_arguments(parser: LightningArgumentParser) -> None:
    # Classes added this way are built (and their flags checked) before the trainer
    # exists, and LightningCLI hands them to the trainer as callbacks.
    parser.add_lightning_class_args(InitialLossCheck, "initial_loss_check")
    parser.add_lightning_class_args(OverfitCheck, "overfit")
    parser.add_lightning_class_args(ActivationStats, "activation_stats")
    parser.add_lightning_class_args(LearningCurves, "learning_curves")
    parser.add_lightning_class_args(TestConfusionMatrix, "test_confusion")
    parser.add_lightning_class_args(EpochTimer, "epoch_timer")
