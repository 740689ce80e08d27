"""The local executor: runs a WorkflowTemplate's steps on this machine, with no cluster."""
from cvatflow.local.executor import LocalExecutor

__all__ = ["LocalExecutor"]
