"""torchrun whose exit status says how its workers ended: 128 + the signal of a killed worker, so retries can tell."""
from __future__ import annotations

import signal
import sys

from cvatflow.exit_status import shell_status

# `--no-python PROGRAM`: our console scripts run as modules of the launcher's own interpreter, whatever PATH holds
# (the local executor runs templates from a virtualenv that need not be on PATH).
MODULES = {"cvatflow-train": "cvatflow.training.cli", "cvatflow": "cvatflow.cli"}


def exit_status(exitcode: int) -> int:
    """A worker's exit status as a shell reports it: a signal (torch's negative exitcode, e.g. -9) becomes
    128 + signal (137 for SIGKILL/OOM, 143 for SIGTERM), a code stays itself, 0 (no code recorded) becomes 1."""
    return shell_status(exitcode) or 1


def _name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _program(argv: list[str]) -> list[str]:
    """`argv` with `--no-python cvatflow-train ...` as `-m cvatflow.training.cli ...` (see MODULES)."""
    if "--no-python" in argv:
        at = argv.index("--no-python")
        rest = argv[at + 1:]
        if rest and rest[0] in MODULES:
            return [*argv[:at], "-m", MODULES[rest[0]], *rest[1:]]
    return list(argv)


def main(argv: list[str]) -> int:
    """Run `torchrun ARGV` (torch.distributed.run) in this process and return its exit status: 0 when every worker
    succeeded; else the status of the first worker to fail (`exit_status`), or 128 + the signal that stopped the
    launcher itself (a pod's SIGTERM on preemption). torchrun alone exits 1 in all those cases, which leaves a
    retry policy keyed on 137/143 (templates/steps.py PREEMPTION) blind to killed workers."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, record
    from torch.distributed.run import parse_args, run

    args = parse_args(_program(argv))
    try:
        record(run)(args)  # as torchrun's main: writes the failed worker's error file, logs its traceback
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        code = exit_status(failure.exitcode)
        print(str(error), file=sys.stderr)
        how = f"signal {_name(-failure.exitcode)}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        print(f"error: worker rank {rank} ended with {how}; exit status {code}", file=sys.stderr, flush=True)
        return code
    except SignalException as error:
        print(f"error: torchrun stopped by {_name(int(error.sigval))}", file=sys.stderr, flush=True)
        return 128 + int(error.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
