"""GET /api/v1/vocabulary: phases, reserved parameter roles and error codes, so the web UI copies none of them."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from cvatflow import errors
from cvatflow.api.auth import require_token
from cvatflow.argo import ARGO_PHASES, FINISHED, Phase
from cvatflow.params import CHECKPOINT_MISSING
from cvatflow.templates import parameter as p

router = APIRouter(prefix="/api/v1/vocabulary", tags=["vocabulary"], dependencies=[Depends(require_token)])

# Roles the server fills itself when a run has data (left empty in a form, they are filled from the dump).
AUTO_FILLED = (p.ANNOTATION_PATH, p.OUTPUT_PATH, p.NUM_CLASSES)


class PhaseInfo(BaseModel):
    name: str
    done: bool = Field(description="A run in this phase has ended.")
    source: str = Field(description="argo: a Workflow or node phase; cvatflow: one of ours (before submission).")


class Vocabulary(BaseModel):
    phase: dict[str, str] = Field(description="Every phase by its constant name, e.g. SUCCEEDED: Succeeded.")
    phases: list[PhaseInfo]
    runPhases: list[str] = Field(description="The phases an execution shows, in order of its life.")
    finished: list[str] = Field(description="Phases a run ends in.")
    reserved: dict[str, str] = Field(description="Reserved parameter roles by their names, e.g. "
                                     "finetuneCheckpoint: cvat-finetune-checkpoint.")
    aliases: dict[str, str] = Field(description="Legacy (Onepanel sys-) names and the role each stands for.")
    autoFilled: list[str] = Field(description="Parameter names (and aliases) the server fills from the data.")
    errors: dict[str, int] = Field(description="cvatflow's error classes and the HTTP status each is answered with.")
    messages: dict[str, str] = Field(description="Messages a client may match, e.g. the missing checkpoint.")


def vocabulary() -> Vocabulary:
    """The answer, built from the modules that own each word (argo.py, templates/parameter.py, errors.py)."""
    roles = {"annotationPath": p.ANNOTATION_PATH, "outputPath": p.OUTPUT_PATH, "numClasses": p.NUM_CLASSES,
             "finetuneCheckpoint": p.FINETUNE_CHECKPOINT, "model": p.MODEL, "dumpFormat": p.DUMP_FORMAT,
             "nodePool": p.NODE_POOL}
    auto = [*AUTO_FILLED, *(alias for alias, role in p.LEGACY_ALIASES.items() if role in AUTO_FILLED)]
    return Vocabulary(
        phase={ph.name: ph.value for ph in Phase},
        runPhases=[Phase.PREPARING.value, *(ph.value for ph in ARGO_PHASES)],
        phases=[PhaseInfo(name=ph.value, done=ph.done, source="argo" if ph in ARGO_PHASES or ph in
                          (Phase.SKIPPED, Phase.OMITTED) else "cvatflow") for ph in Phase],
        finished=[ph.value for ph in FINISHED], reserved=roles, aliases=dict(p.LEGACY_ALIASES), autoFilled=auto,
        errors=errors.codes(), messages={"checkpointMissing": CHECKPOINT_MISSING})


@router.get("", response_model=Vocabulary, summary="Phases, reserved parameters and error codes, for clients")
def get_vocabulary() -> Vocabulary:
    return vocabulary()
