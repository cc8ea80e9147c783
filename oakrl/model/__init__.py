"""Transition models: what happens next if the agent takes this action, learned from the stream."""

from oakrl.model.transition import (
    HEADS,
    ModelState,
    Prediction,
    TransitionModel,
    transition_model,
)

__all__ = ["HEADS", "ModelState", "Prediction", "TransitionModel", "transition_model"]
