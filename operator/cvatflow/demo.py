"""`make demo`: render and validate the built-in templates and show the CVAT form of one of them."""
from __future__ import annotations

import sys

from rich.console import Console

from cvatflow.cli import main as cli


def main() -> None:
    console = Console()
    console.rule("cvatflow demo: the built-in training templates")
    for args in (["templates", "list"], ["templates", "validate", "workflow_templates/detr-training.yaml",
                                         "workflow_templates/maskrcnn-training.yaml"],
                 ["templates", "form", "maskrcnn-training"]):
        console.print(f"[bold]$ cvatflow {' '.join(args)}[/bold]")
        try:
            cli(args)
        except SystemExit as exc:
            if exc.code:
                sys.exit(exc.code)


if __name__ == "__main__":
    main()
