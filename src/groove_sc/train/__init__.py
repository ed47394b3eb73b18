"""Training plans (Lightning)."""

from ._trainingplan import GrooveTrainingPlan

__all__ = ["GrooveTrainingPlan"]
