"""The trainer: wires components by name and runs an execution strategy."""

from agentlightning_core.trainer.trainer import Trainer

__all__ = ["Trainer"]
