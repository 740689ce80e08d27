"""The request and response bodies of the HTTP API, as pydantic models (they are the OpenAPI document)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cvatflow.errors import Problem as ProblemRecord
from cvatflow.names import RUN_NAME, run_problems  # Kubernetes syntax; routes import RUN_NAME here

# A template is named like a Kubernetes object; never a path (the local backend also loads files by path).
TEMPLATE_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
Scalar = str | int | float | bool


class Strict(BaseModel):
    """Unknown fields are refused: a misspelt field would otherwise be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """One thing wrong with a request: where, what, and how to fix it."""

    path: str = ""
    message: str
    fix: str = ""

    @classmethod
    def of(cls, problem: ProblemRecord) -> Problem:
        return cls(path=problem.path, message=problem.message, fix=problem.fix)


class ErrorBody(BaseModel):
    """Every error answer: one line for people (Onepanel's `message`), and each problem for forms."""

    message: str
    problems: list[Problem] = []


# -- templates ----------------------------------------------------------------------------------

class Option(BaseModel):
    name: str
    value: str


class FormField(BaseModel):
    """One public parameter as the training dialog renders it."""

    name: str
    displayName: str
    type: str
    value: str
    required: bool
    options: list[Option]
    hint: str = Field(description="The hint as plain text.")
    hintHtml: str = Field(description="The hint as HTML in which only links survive.")
    min: str = Field("", description="Smallest accepted value of an input.number (empty: none).")
    max: str = Field("", description="Largest accepted value of an input.number (empty: none).")


class TemplateSummary(BaseModel):
    name: str
    title: str = ""
    description: str = ""
    labels: dict[str, str] = {}
    usedByCvat: bool = False


class TemplateList(BaseModel):
    count: int
    items: list[TemplateSummary]


class TemplateDetail(TemplateSummary):
    parameters: list[FormField] = Field(description="The public parameters, in form order.")


# -- jobs and executions --------------------------------------------------------------------------

JobState = Literal["queued", "running", "succeeded", "failed"]


class Job(BaseModel):
    """Background work the API does for a request: a dump and submission, or a batch annotation."""

    id: str
    kind: Literal["execution", "annotate"]
    state: JobState
    stage: str = Field("", description="What it is doing now, e.g. exporting, submitting, predicting.")
    done: int = 0
    total: int = 0
    message: str = ""
    problems: list[Problem] = []
    execution: str | None = Field(None, description="The execution (run) it belongs to.")
    cvatTask: int | None = None
    result: dict[str, Any] = {}
    createdAt: str
    updatedAt: str


class JobList(BaseModel):
    count: int
    items: list[Job]


class ExecutionRequest(Strict):
    """Start a template on a CVAT task (exported in the background) or on a dataset already prepared."""

    template: str = Field(pattern=TEMPLATE_NAME, examples=["maskrcnn-training"])
    cvatTask: int | None = Field(None, ge=1, le=2**31 - 1, description="CVAT task id to train on.")
    cvatJob: int | None = Field(None, ge=1, le=2**31 - 1, description="CVAT job id, recorded on the run.")
    dataset: str | None = Field(None, min_length=1, max_length=4096,
                                description="A CVAT export (zip or folder) on the server, or a URI in the store.")
    parameters: dict[str, Scalar] = Field(default_factory=dict, examples=[{"epochs": "5"}])
    labels: dict[str, str] = Field(default_factory=dict)
    name: str | None = Field(None, pattern=RUN_NAME, description="Run name; default <template>-<5 characters>.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        problems = run_problems(None, labels)  # the one Kubernetes label check, the Client's too
        if problems:
            raise ValueError("; ".join(map(str, problems)))
        return labels


class Step(BaseModel):
    name: str
    phase: str
    startedAt: str | None = None
    finishedAt: str | None = None
    message: str = ""
    template: str = ""


class Metrics(BaseModel):
    """What the training steps reported through their events."""

    epoch: float | None = None
    step: int | None = None
    totalSteps: int | None = None
    train: dict[str, float] = {}
    val: dict[str, float] = {}
    bestMap: float | None = None
    checkpoints: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []


class ExecutionSummary(BaseModel):
    id: str
    template: str
    phase: str = Field(description="Preparing (export and submission under way), then Argo's: Pending, "
                                   "Running, Succeeded, Failed, Error.")
    progress: str = ""
    cvatTask: int | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    message: str = ""
    labels: dict[str, str] = {}
    bestMap: float | None = None


class Execution(ExecutionSummary):
    parameters: dict[str, str] = {}
    hyperparameters: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Effective hyperparameters the run was submitted with, and their sources.",
        examples=[{"epochs": {"value": "1", "source": "you, in hyperparameters"}}])
    steps: list[Step] = []
    preparation: Job | None = None
    metrics: Metrics | None = None
    outputs: dict[str, str] = {}
    outputKey: str | None = Field(None, description="The output prefix as a key in the store (what "
                                  "cvat-finetune-checkpoint takes), once known.")
    problems: list[Problem] = []


class ExecutionList(BaseModel):
    count: int
    items: list[ExecutionSummary]


class AnnotateRequest(Strict):
    cvatTask: int = Field(ge=1, le=2**31 - 1, description="The CVAT task whose images are annotated.")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Minimum score of a kept object.")
    clearExisting: bool = Field(False, description="Replace the task's annotations instead of adding to them.")


# -- webhooks -------------------------------------------------------------------------------------

class WebhookAnswer(BaseModel):
    event: str
    duplicate: bool = Field(False, description="True when this delivery was seen before (nothing new started).")
    executions: list[str] = []


# -- CVAT tasks -----------------------------------------------------------------------------------

class CvatTaskInfo(BaseModel):
    id: int
    name: str = ""
    labels: list[str] = []
    projectId: int | None = None
    status: str = ""
    size: int | None = None


class CvatTaskList(BaseModel):
    count: int
    items: list[CvatTaskInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    backend: str
    version: str


# -- the Onepanel CVAT fork's /onepanelio/ shapes (its Python SDK's to_dict(): snake_case) -------------

class OnepanelParameter(BaseModel):
    name: str
    value: str | None = None
    type: str = "input.text"
    display_name: str | None = None
    hint: str | None = Field(None, description="HTML in which only links survive (the fork renders it as HTML).")
    options: list[Option] = []
    required: bool = False
    visibility: str = "public"


class OnepanelLabel(BaseModel):
    key: str
    value: str


class OnepanelTemplate(BaseModel):
    uid: str
    name: str
    version: str
    versions: str
    is_latest: bool = True
    is_archived: bool = False
    description: str = ""
    labels: list[OnepanelLabel] = []
    parameters: list[OnepanelParameter] = []
    manifest: str | None = None
    created_at: str | None = None
    modified_at: str | None = None


class OnepanelTemplateList(BaseModel):
    count: int
    workflow_templates: list[OnepanelTemplate]


class OnepanelNodePool(BaseModel):
    label: str
    options: list[Option]


class OnepanelNodePoolAnswer(BaseModel):
    node_pool: OnepanelNodePool


class OnepanelDumpFormat(BaseModel):
    name: str
    tag: str


class OnepanelDumpFormats(BaseModel):
    dump_formats: list[OnepanelDumpFormat]


class OnepanelObjectCounts(BaseModel):
    """The fork's UI reads `shapes.length` and `tracks.length` to warn below 100 annotations."""

    shapes: list[dict[str, Any]]
    tracks: list[dict[str, Any]]


class OnepanelPath(BaseModel):
    name: str


class OnepanelOutputPathRequest(BaseModel):
    """The fork's `getOutputPath` body: the template's uid."""

    uid: str = Field("", max_length=253)


class OnepanelBaseModelRequest(BaseModel):
    uid: str = ""
    sysRefModel: str = ""


class OnepanelKeys(BaseModel):
    keys: list[str]


class OnepanelExecuteRequest(BaseModel):
    """What the fork posts: every template parameter at its value; older forks sent `dump_format` apart."""

    workflow_template: str = Field(pattern=TEMPLATE_NAME)
    parameters: dict[str, Scalar | None] = Field(default_factory=dict)
    dump_format: str | None = None


class OnepanelExecuteAnswer(BaseModel):
    """Onepanel answered the workflow's `metadata`: `url` is what the fork links to."""

    url: str
    uid: str
    name: str
