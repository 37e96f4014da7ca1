"""Stage 2 of the pipeline: run a scenario's sessions against a real server, producing a Timeline."""

from txnlab.runner.lab import Lab, open_lab

__all__ = ["Lab", "open_lab"]
