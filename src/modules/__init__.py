from src.modules.classifier import ImageClassifier

__all__ = ["ImageClassifier"]
