"""The training harness shared by all model adapters: data, loop, checkpoints, evaluation, export, model state."""
