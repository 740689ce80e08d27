"""Where things are, for tests in any folder: the repository, tests/, its data, ../shared, the Onepanel templates."""
from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DATA = TESTS / "data"
SHARED = ROOT.parent / "shared"


def onepanel_manifests() -> list[Path]:
    """Every real Onepanel template: the shared reference set and the seed's DETR template."""
    files = sorted((SHARED / "reference" / "onepanel-templates").glob("*.yaml"))
    files += sorted((DATA / "onepanel").glob("*.yaml"))
    return files
