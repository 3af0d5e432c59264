from src.callbacks.exact_resume import ExactResume
from src.callbacks.finite_guard import FiniteGuard, TrainingDiverged
from src.callbacks.freeze_backbone import FreezeBackbone
from src.callbacks.last_checkpoint import LastCheckpoint, StopRequested
from src.callbacks.run_record import RunRecord

__all__ = ["ExactResume", "FiniteGuard", "FreezeBackbone", "LastCheckpoint", "RunRecord",
           "StopRequested", "TrainingDiverged"]
