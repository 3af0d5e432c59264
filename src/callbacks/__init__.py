from src.callbacks.freeze_backbone import FreezeBackbone
from src.callbacks.run_record import RunRecord

__all__ = ["FreezeBackbone", "RunRecord"]
