"""`cvatflow templates`: list, render, validate, import and show the form of workflow templates."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from cvatflow.artifact_repository import ArtifactRepository
from cvatflow.atomic import atomic_write
from cvatflow.errors import Problem, TemplateError, errors_only

app = typer.Typer(help="Workflow templates: list, render, validate, import, form.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _repository(path: Path | None) -> ArtifactRepository | None:
    return ArtifactRepository.from_file(path) if path else None


@app.command("list")
def list_templates() -> None:
    """List the built-in templates."""
    from cvatflow.templates.catalog import builtin_templates

    table = Table("title", "labels", "parameters", "public")
    table.columns.insert(0, Column("name", no_wrap=True))
    for name, t in builtin_templates().items():
        table.add_row(name, t.title, ", ".join(f"{k}={v}" for k, v in t.labels.items()),
                      str(len(t.parameters)), str(len(t.public_parameters())))
    console.print(table)


@app.command()
def render(
    names: list[str] = typer.Argument(None, help="Built-in templates to render (default: all)."),
    out: Path = typer.Option(Path("workflow_templates"), "--out", help="Folder to write <name>.yaml into."),
    check: bool = typer.Option(False, "--check", help="Fail if the files in --out are missing or stale."),
    artifact_repository: Path | None = typer.Option(
        None, help="Complete artifact shorthand from this artifact-repository YAML."),
) -> None:
    """Render built-in templates to kubectl-applyable WorkflowTemplate YAML files."""
    from cvatflow.templates.catalog import builtin_templates, get_template
    from cvatflow.templates.manifest import complete_artifacts
    from cvatflow.templates.render import to_yaml
    from cvatflow.templates.validate import check as check_template

    repository = _repository(artifact_repository)
    templates = [get_template(n) for n in names] if names else list(builtin_templates().values())
    stale = []
    for template in templates:
        if repository:
            complete_artifacts(template.spec, repository)
        check_template(template, source=template.name)
        text = to_yaml(template)
        path = out / f"{template.name}.yaml"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        console.print(f"wrote {path}")
    if stale:
        raise TemplateError(f"stale or missing: {', '.join(stale)}; run `cvatflow templates render` and commit")
    if check:
        console.print(f"{len(templates)} rendered templates are up to date in {out}")


def _settings():
    """The cvatflow settings (node pools, artifact repository) that fill Onepanel placeholders."""
    from cvatflow.config import load_settings

    return load_settings()


def _placeholder_values(artifact_repository: Path | None) -> dict[str, str]:
    from cvatflow.templates.placeholders import placeholder_values

    settings = _settings()
    repository = _repository(artifact_repository) or settings.artifact_repository
    return placeholder_values(repository, settings.node_pools)


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Argo manifests (Workflow, WorkflowTemplate, ClusterWorkflowTemplate, "
                                                 "CronWorkflow, List; several documents per file) or Onepanel manifests."),
    lenient: bool = typer.Option(False, "--lenient", help="Allow fields Argo's schema does not know."),
    artifact_repository: Path | None = typer.Option(
        None, help="Artifact-repository YAML that fills Onepanel's {{.ArtifactRepositoryType}}."),
) -> None:
    """Validate manifests with Argo's schema and Argo's validator rules (errors) and cvatflow's (warnings).

    Exit 1 when any object has an error; warnings alone exit 0.
    """
    from cvatflow.templates import placeholders
    from cvatflow.templates.manifest import load_dict, object_name, objects
    from cvatflow.templates.render import render as render_dict
    from cvatflow.templates.validate import KINDS
    from cvatflow.templates.validate import validate as validate_doc
    from cvatflow.templates.yamlsafe import read_text

    values = _placeholder_values(artifact_repository)
    failed = False
    for path in files:
        try:
            documents, notes = placeholders.load(read_text(path), str(path), values)
        except TemplateError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            failed = True
            continue
        for note in notes:
            err.print(f"note: {path}: {escape(note)}", highlight=False, soft_wrap=True)
        found = objects(documents)
        if not found:
            err.print(f"[red]error:[/red] {escape(str(path))}: holds no manifest (the file is empty)", highlight=False)
            failed = True
        for label, doc in found:
            name = object_name(doc)
            who = f"{path}" + (f" {label}" if label else "") + (f" ({name})" if name else "")
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if isinstance(doc, dict) and "kind" in doc and kind not in KINDS:
                err.print(f"[yellow]warning:[/yellow] {escape(who)}: kind {escape(repr(kind))} is not a workflow; "
                          f"cvatflow does not check it", highlight=False, soft_wrap=True)
                continue
            onepanel = isinstance(doc, dict) and "kind" not in doc
            if onepanel:
                try:  # An Onepanel manifest is checked as what importing it would produce.
                    doc = render_dict(load_dict(doc, source=who, name="onepanel-manifest"))
                except TemplateError as exc:
                    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
                    failed = True
                    continue
            # Onepanel manifests are CVAT's templates: the CVAT warnings apply to them.
            problems = validate_doc(doc, strict=not lenient, cvat=True if onepanel else None)
            for problem in problems:
                _print_problem(who, problem)
            if errors_only(problems):
                failed = True
            else:
                console.print(f"[green]ok[/green] {escape(who)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _print_problem(where: Path | str, problem: Problem) -> None:
    colour = "red" if problem.severity == "error" else "yellow"
    err.print(f"[{colour}]{problem.severity}:[/{colour}] {escape(f'{where}: {problem}')}", highlight=False,
              soft_wrap=True)


@app.command("import")
def import_manifest(
    manifest: Path = typer.Argument(..., help="Onepanel manifest (spec body) or an Argo workflow object YAML."),
    name: str = typer.Option(..., "--name", help="Name of the WorkflowTemplate to create."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write here instead of stdout."),
    artifact_repository: Path | None = typer.Option(
        None, help="Artifact-repository YAML that completes `s3: {key: ...}` shorthand and fills "
                   "{{.ArtifactRepositoryType}}."),
    cvat: bool = typer.Option(True, "--cvat/--no-cvat", help="Label the template `used-by: cvat`."),
) -> None:
    """Import a manifest as a WorkflowTemplate that keeps its form metadata and its values as written."""
    from cvatflow.templates.manifest import load_dict, read_object
    from cvatflow.templates.render import to_yaml
    from cvatflow.templates.validate import KINDS
    from cvatflow.templates.validate import validate as validate_template
    from cvatflow.templates.yamlsafe import read_text

    if output is not None and not output.parent.is_dir():
        raise TemplateError(f"{output}: the folder {output.parent} does not exist; create it or give another -o path")
    settings = _settings()
    repository = _repository(artifact_repository) or settings.artifact_repository
    doc = read_object(read_text(manifest), str(manifest), repository, settings.node_pools)
    if isinstance(doc, dict) and doc.get("kind") in KINDS:
        # An Argo object is checked as written, so nothing wrong in it is dropped on the way in.
        problems = errors_only(validate_template(doc))
        for problem in problems:
            _print_problem(manifest, problem)
        if problems:
            raise typer.Exit(1)
    template = load_dict(doc, source=str(manifest), name=name, repository=repository)
    if cvat:
        template.labels.setdefault("used-by", "cvat")
    problems = validate_template(template)
    for problem in problems:
        _print_problem(manifest, problem)
    if errors_only(problems):
        raise typer.Exit(1)
    text = to_yaml(template)
    if output:
        try:
            atomic_write(output, text)
        except OSError as exc:
            raise TemplateError(f"{output}: cannot be written ({exc.strerror}); give another -o path") from None
        err.print(f"wrote {escape(str(output))}", highlight=False)
    else:
        typer.echo(text, nl=False)


@app.command()
def form(
    template: str = typer.Argument(..., help="Built-in template name or a template YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the parameter form CVAT would show for a template (public parameters, in order)."""
    from cvatflow.config import load_settings
    from cvatflow.params import node_pool_options
    from cvatflow.templates.catalog import get_template
    from cvatflow.templates.form import form as build_form

    # The node pools of the config file, as the API's form and the CVAT dialog offer them.
    fields = build_form(get_template(template), node_pools=node_pool_options(load_settings().node_pools))
    if as_json:
        typer.echo(json.dumps(fields, indent=2))
        return
    table = Table("parameter", "label", "type", "default", "options", "required", title=template)
    for f in fields:
        table.add_row(f["name"], f["displayName"], f["type"], _short(f["value"]),
                      ", ".join(o["value"] for o in f["options"]) or ("(node pools)" if f["type"] ==
                                                                        "select.nodepool" else ""),
                      "yes" if f["required"] else "")
    console.print(table)


def _short(value: str, width: int = 40) -> str:
    first = value.splitlines()[0] if value else ""
    return first[:width] + ("…" if len(value) > len(first) or len(first) > width else "")
