"""A child process's exit status as shells, Kubernetes and Argo report it (128 + signal for a killed one)."""
from __future__ import annotations


def shell_status(returncode: int) -> int:
    """`returncode` as Python's subprocess (or torch's elastic agent) gives it, as a shell reports it: a child
    killed by signal N (returncode -N) becomes 128 + N (137 for SIGKILL, an OOM kill; 143 for SIGTERM, a stopped
    or preempted pod), any other code stays itself. What a container's status and the templates' retryStrategy
    (`lastRetry.exitCode`) see; a raw -9 would leave the process as 247."""
    return 128 - returncode if returncode < 0 else returncode
