from src.callbacks.exact_resume import ExactResume
from src.callbacks.finite_guard import FiniteGuard, TrainingDiverged
from src.callbacks.last_checkpoint import LastCheckpoint, StopRequested
from src.callbacks.run_record import RunRecord

__all__ = ["ExactResume", "FiniteGuard", "LastCheckpoint", "RunRecord", "StopRequested",
           "TrainingDiverged"]
