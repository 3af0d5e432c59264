from src.callbacks.run_record import RunRecord

__all__ = ["RunRecord"]
