// The training dialog: a CVAT task (or, with no CVAT configured, an uploaded export or a dataset in the
// store), then a template offered to CVAT, then its parameter form; submit runs it.

import {api, ApiError, apiUpload} from "./api.js";
import {announce, fill, h} from "./dom.js";
import {clearProblems, collect, renderFields, showProblems, validate} from "./form.js";
import {navigate} from "./router.js";
import {checkpointNames, vocab} from "./vocabulary.js";

const FEW_ANNOTATIONS = 100; // Onepanel's dialog warned below this many shapes and tracks
const PARAM_PREFIX = "param."; // ?param.<name>=value prefills a parameter (e.g. from a run's page)

export function trainPage(main, _match, search) {
  const abort = new AbortController();
  const state = {task: search.get("task") || "", dataset: search.get("dataset") || "",
                 template: search.get("template") || "", prefill: {}};
  for (const [key, value] of search) if (key.startsWith(PARAM_PREFIX)) state.prefill[key.slice(PARAM_PREFIX.length)] = value;

  const tasksBody = h("div", {class: "loading"}, "Loading CVAT tasks…");
  const templatesSection = h("section", {"aria-labelledby": "templates-title", hidden: true});
  const formSection = h("section", {"aria-labelledby": "form-title", hidden: true});
  fill(main,
    h("h1", {}, "Train a model"),
    h("section", {"aria-labelledby": "tasks-title"}, h("h2", {id: "tasks-title"}, "1. CVAT task"), tasksBody),
    templatesSection, formSection);

  const remember = () => {
    const search = new URLSearchParams();
    if (state.task) search.set("task", state.task);
    if (state.dataset) search.set("dataset", state.dataset);
    if (state.template) search.set("template", state.template);
    for (const [key, value] of Object.entries(state.prefill)) search.set(PARAM_PREFIX + key, value);
    history.replaceState(null, "", `/ui/${search.size ? `?${search}` : ""}`);
  };

  const chooseTask = async (task, {focus = true} = {}) => {
    state.task = String(task.id);
    remember();
    for (const row of tasksBody.querySelectorAll("[data-task]")) {
      const chosen = row.dataset.task === state.task;
      row.classList.toggle("chosen", chosen);
      row.querySelector("button").setAttribute("aria-pressed", String(chosen));
    }
    await showTemplates(templatesSection, state, task, {focus, signal: abort.signal, onChoose: chooseTemplate});
    if (state.template) await chooseTemplate(state.template, {focus: false});
  };

  const chooseTemplate = async (name, {focus = true} = {}) => {
    state.template = name;
    remember();
    for (const button of templatesSection.querySelectorAll("[data-template]")) {
      button.setAttribute("aria-pressed", String(button.dataset.template === name));
    }
    await showForm(formSection, state, {focus, signal: abort.signal});
  };

  const chooseDataset = async (dataset, label, {focus = true} = {}) => {
    state.dataset = dataset;
    state.task = "";
    remember();
    await showTemplates(templatesSection, state, {id: null, name: label}, {focus, signal: abort.signal,
                                                                           onChoose: chooseTemplate});
    if (state.template) await chooseTemplate(state.template, {focus: false});
  };

  (async () => {
    try {
      const {items} = await api("/api/v1/cvat/tasks", {signal: abort.signal});
      fill(tasksBody, taskTable(items, chooseTask));
      const wanted = items.find((t) => String(t.id) === state.task);
      if (wanted) await chooseTask(wanted, {focus: false});
    } catch (error) {
      if (abort.signal.aborted) return;
      if (error instanceof ApiError && error.problems.some((p) => p.path === "cvatTask")) {
        // No CVAT server configured: train on an export instead, through the same submission.
        main.querySelector("#tasks-title").textContent = "1. Data";
        fill(tasksBody, dataChooser(chooseDataset, abort.signal));
        if (state.dataset) await chooseDataset(state.dataset, state.dataset, {focus: false});
        return;
      }
      fill(tasksBody, h("p", {class: "error-box", role: "alert"}, error.message));
    }
  })();
  return () => abort.abort();
}

function dataChooser(onChoose, signal) {
  const file = h("input", {id: "export-file", name: "export", type: "file", accept: ".zip,application/zip",
                           "aria-describedby": "export-help data-error"});
  const uri = h("input", {id: "dataset-uri", name: "dataset", type: "text", autocomplete: "off",
                          placeholder: "s3://bucket/annotations/7/01022026120000/", "aria-describedby": "data-error"});
  const error = h("p", {class: "error", id: "data-error", role: "alert", hidden: true});
  const status = h("p", {class: "muted", "aria-live": "polite"});
  const fail = (message) => { error.textContent = message; error.hidden = false; };
  const upload = h("button", {type: "button", onclick: async () => {
    error.hidden = true;
    const chosen = file.files[0];
    if (!chosen) { fail("Choose an export zip first."); file.focus(); return; }
    const name = chosen.name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^[._-]+/, "") || "export.zip";
    upload.disabled = true;
    status.textContent = `Uploading ${chosen.name}…`;
    try {
      const answer = await apiUpload(`/api/v1/datasets/uploads/${encodeURIComponent(name.endsWith(".zip") ? name : `${name}.zip`)}`,
                                     chosen, {signal});
      status.textContent = `Uploaded ${chosen.name} (${answer.size} bytes); it is checked when the run starts.`;
      await onChoose(answer.dataset, chosen.name);
    } catch (failure) {
      status.textContent = "";
      if (!signal.aborted) fail(failure.message);
    } finally {
      upload.disabled = false;
    }
  }}, "Upload");
  const use = h("button", {type: "button", onclick: () => {
    error.hidden = true;
    const value = uri.value.trim();
    if (!value) { fail("Give the URI of a dataset in the store."); uri.focus(); return; }
    onChoose(value, value);
  }}, "Use this dataset");
  return h("div", {class: "data-choice"},
    h("p", {}, "No CVAT server is configured: train on a CVAT export (zip) or on a dataset already in the store."),
    h("div", {class: "field"}, h("label", {for: "export-file"}, "CVAT export (zip)"), file,
      h("p", {class: "hint", id: "export-help"}, "Exported from CVAT with images, e.g. in COCO 1.0 format.")),
    h("div", {class: "actions"}, upload),
    h("div", {class: "field"}, h("label", {for: "dataset-uri"}, "Or a dataset in the store"), uri),
    h("div", {class: "actions"}, use),
    error, status);
}

function taskTable(tasks, onChoose) {
  if (!tasks.length) return h("p", {}, "The configured CVAT has no tasks.");
  return h("table", {class: "cards"},
    h("caption", {class: "sr-only"}, "CVAT tasks"),
    h("thead", {}, h("tr", {}, ["ID", "Name", "Labels", "Status", "Images", ""].map((t) => h("th", {scope: "col"}, t)))),
    h("tbody", {}, tasks.map((task) => h("tr", {dataset: {task: String(task.id)}},
      h("td", {dataset: {label: "ID"}}, task.id),
      h("td", {dataset: {label: "Name"}}, task.name),
      h("td", {dataset: {label: "Labels"}}, task.labels.join(", ")),
      h("td", {dataset: {label: "Status"}}, task.status),
      h("td", {dataset: {label: "Images"}}, task.size ?? ""),
      h("td", {}, h("button", {type: "button", "aria-pressed": "false", "aria-label": `Train on task ${task.id} ${task.name}`,
                              onclick: () => onChoose(task)}, "Choose"))))));
}

let templateCache = null;

async function showTemplates(section, state, task, {focus, signal, onChoose}) {
  section.hidden = false;
  const body = h("div", {class: "loading"}, "Loading templates…");
  const warning = h("div", {class: "annotation-count", "aria-live": "polite"});
  const title = h("h2", {id: "templates-title", tabindex: "-1"},
                  task.id === null ? `2. Template for ${task.name}` : `2. Template for task ${task.id} (${task.name})`);
  fill(section, title, warning, body);
  if (focus) title.focus();
  if (task.id !== null) countAnnotations(task.id, warning, signal);
  templateCache ??= api("/api/v1/templates?label=used-by%3Dcvat", {signal}).then((b) => b.items);
  let templates;
  try {
    templates = await templateCache;
  } catch (error) {
    templateCache = null;
    if (!signal.aborted) fill(body, h("p", {class: "error-box", role: "alert"}, error.message));
    return;
  }
  if (!templates.length) { fill(body, h("p", {}, "No template is labelled used-by: cvat.")); return; }
  fill(body, h("ul", {class: "choices"}, templates.map((t) => h("li", {},
    h("button", {type: "button", class: "choice", "aria-pressed": String(t.name === state.template),
                 dataset: {template: t.name}, onclick: () => onChoose(t.name)},
      h("strong", {}, t.title || t.name), h("span", {class: "muted"}, ` ${t.name}`),
      t.description ? h("span", {class: "description"}, t.description) : "")))));
}

async function countAnnotations(taskId, box, signal) {
  try {
    const counts = await api(`/onepanelio/get_object_counts/${taskId}`, {method: "POST", body: {}, signal});
    const total = counts.shapes.length + counts.tracks.length;
    if (total < FEW_ANNOTATIONS) {
      fill(box, h("p", {class: "warning", role: "note"},
        h("strong", {}, "Few annotations: "),
        `task ${taskId} has ${total} annotation${total === 1 ? "" : "s"}. A model trained on fewer than `
        + `${FEW_ANNOTATIONS} is unlikely to be good; annotate more before training, or train anyway.`));
    } else {
      fill(box);
    }
  } catch (error) {
    if (!signal.aborted) fill(box, h("p", {class: "muted"}, `Could not count the task's annotations: ${error.message}`));
  }
}

async function showForm(section, state, {focus, signal}) {
  section.hidden = false;
  const title = h("h2", {id: "form-title", tabindex: "-1"}, "3. Parameters");
  const body = h("div", {class: "loading"}, "Loading the form…");
  fill(section, title, body);
  let template;
  try {
    template = await api(`/api/v1/templates/${encodeURIComponent(state.template)}`, {signal});
  } catch (error) {
    if (!signal.aborted) fill(body, h("p", {class: "error-box", role: "alert"}, error.message));
    return;
  }
  title.textContent = `3. Parameters of ${template.title || template.name}`;
  const summary = h("div", {class: "error-box", role: "alert", hidden: true});
  const submit = h("button", {type: "submit", class: "primary"}, "Execute training");
  const form = h("form", {class: "params", novalidate: true},
    h("p", {class: "muted"}, "Fields marked ", h("span", {class: "req"}, "*"), " are required."),
    renderFields(template.parameters, state.prefill),
    summary,
    h("div", {class: "actions"}, submit));
  fill(body, form);
  if (focus) title.focus();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    summary.hidden = true;
    const values = collect(form, template.parameters);
    const local = validate(template.parameters, values);
    if (local.length) {
      showProblems(form, local);
      announce(`${local.length} field${local.length > 1 ? "s need" : " needs"} attention.`, "error");
      return;
    }
    clearProblems(form);
    submit.disabled = true;
    announce("Starting the training…");
    try {
      const execution = await api("/api/v1/executions", {method: "POST",
        body: {template: template.name, parameters: values,
               ...(state.task ? {cvatTask: Number(state.task)} : {dataset: state.dataset})}});
      announce(`Execution ${execution.id} started.`);
      navigate(`/ui/runs/${encodeURIComponent(execution.id)}`);
    } catch (error) {
      submit.disabled = false;
      let problems = error instanceof ApiError ? error.problems : [];
      if (error instanceof ApiError && error.message === vocab.messages.checkpointMissing) {
        const field = template.parameters.find((p) => checkpointNames().includes(p.name));
        problems = [{path: field?.name || "", message: error.message, fix: "give the output prefix of an earlier run"}];
      }
      const unplaced = showProblems(form, problems);
      if (unplaced.length || !problems.length) {
        fill(summary, h("p", {}, error.message), unplaced.length
          ? h("ul", {}, unplaced.map((p) => h("li", {}, `${p.path ? `${p.path}: ` : ""}${p.message}`))) : "");
        summary.hidden = false;
      }
      announce(`The training was not started: ${error.message}`, "error");
    }
  });
}
