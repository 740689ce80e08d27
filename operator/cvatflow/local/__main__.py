"""The detached worker process: `python -m cvatflow.local RUN_DIR` executes one run."""
import sys
from pathlib import Path

from cvatflow.local.executor import LocalExecutor, read_json


def main() -> int:
    run_dir = Path(sys.argv[1])
    workflow = read_json(run_dir / "workflow.json")
    status = LocalExecutor(run_dir.parent, workflow["storeUri"]).execute(run_dir)
    return 0 if status["phase"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
