"""Execution backends (kubernetes, argo-server, local), the Run handle and the Client."""
from cvatflow.runs.backend import Backend
from cvatflow.runs.client import Client
from cvatflow.runs.run import Run, RunFailed, RunStatus, StepStatus

__all__ = ["Backend", "Client", "Run", "RunFailed", "RunStatus", "StepStatus"]
