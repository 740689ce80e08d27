// The runs dashboard: every execution with phase, template, task, progress and best mAP; filtered and refreshed.

import {api, query} from "./api.js";
import {fill, formatMap, h, phaseBadge, when} from "./dom.js";
import {vocab} from "./vocabulary.js";

const REFRESH_MS = 5000;

export function runsPage(main, _match, search) {
  const abort = new AbortController();
  const filters = {template: search.get("template") || "", cvatTask: search.get("cvatTask") || "",
                   phase: search.get("phase") || ""};
  const templateSelect = h("select", {id: "filter-template", name: "template"}, h("option", {value: ""}, "Any template"));
  const taskInput = h("input", {id: "filter-task", name: "cvatTask", type: "text", inputmode: "numeric",
                                pattern: "[0-9]*", value: filters.cvatTask, placeholder: "any", size: 6});
  const phaseSelect = h("select", {id: "filter-phase", name: "phase"}, h("option", {value: ""}, "Any phase"),
    vocab.runPhases.map((p) => h("option", {value: p, selected: p === filters.phase || undefined}, p)));
  const count = h("p", {class: "muted", "aria-live": "polite", id: "runs-count"});
  const table = h("div", {class: "loading"}, "Loading runs…");
  const form = h("form", {class: "filters", role: "search", "aria-label": "Filter runs"},
    h("div", {class: "field"}, h("label", {for: "filter-template"}, "Template"), templateSelect),
    h("div", {class: "field"}, h("label", {for: "filter-task"}, "CVAT task"), taskInput),
    h("div", {class: "field"}, h("label", {for: "filter-phase"}, "Phase"), phaseSelect),
    h("div", {class: "actions"}, h("button", {type: "submit"}, "Filter")));
  fill(main, h("div", {class: "page-head"}, h("h1", {}, "Runs"), h("a", {href: "/ui/", class: "button primary"}, "New training")),
    form, count, table);

  api("/api/v1/templates", {signal: abort.signal}).then(({items}) => {
    for (const t of items) {
      templateSelect.append(h("option", {value: t.name, selected: t.name === filters.template || undefined}, t.title || t.name));
    }
  }).catch(() => { /* the filter still works by typing none; the table says what went wrong */ });

  let timer = null;
  const load = async () => {
    clearTimeout(timer);
    try {
      const {items} = await api(`/api/v1/executions${query({...filters, withMetrics: "true"})}`, {signal: abort.signal});
      fill(table, runTable(items));
      count.textContent = `${items.length} run${items.length === 1 ? "" : "s"}`;
    } catch (error) {
      if (abort.signal.aborted) return;
      fill(table, h("p", {class: "error-box", role: "alert"}, error.message));
    }
    // Poll only while someone looks: a hidden tab costs the server nothing.
    if (!abort.signal.aborted) timer = setTimeout(() => (document.hidden ? null : load()), REFRESH_MS);
  };
  const onVisible = () => { if (!document.hidden) load(); };
  document.addEventListener("visibilitychange", onVisible);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(filters, {template: templateSelect.value, cvatTask: taskInput.value.trim(), phase: phaseSelect.value});
    history.replaceState(null, "", `/ui/runs${query(filters)}`);
    load();
  });
  for (const select of [templateSelect, phaseSelect]) select.addEventListener("change", () => form.requestSubmit());
  load();
  return () => { abort.abort(); clearTimeout(timer); document.removeEventListener("visibilitychange", onVisible); };
}

function progressCell(text) {
  const [done, total] = String(text || "").split("/").map(Number);
  if (!total) return text || "—";
  return h("span", {class: "progress-cell"},
    h("progress", {max: total, value: done, "aria-label": `${done} of ${total} steps`}), ` ${done}/${total}`);
}

function runTable(items) {
  if (!items.length) return h("p", {class: "empty"}, "No runs match.");
  const columns = ["Run", "Phase", "Template", "Task", "Progress", "Best mAP", "Started", "Finished"];
  return h("table", {class: "cards runs"},
    h("caption", {class: "sr-only"}, "Executions, newest first"),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {scope: "col"}, c)))),
    h("tbody", {}, items.map((run) => h("tr", {dataset: {run: run.id}},
      h("th", {scope: "row", dataset: {label: "Run"}}, h("a", {href: `/ui/runs/${encodeURIComponent(run.id)}`}, run.id)),
      h("td", {dataset: {label: "Phase"}}, phaseBadge(run.phase)),
      h("td", {dataset: {label: "Template"}}, run.template),
      h("td", {dataset: {label: "Task"}}, run.cvatTask ?? "—"),
      h("td", {dataset: {label: "Progress"}}, progressCell(run.progress)),
      h("td", {dataset: {label: "Best mAP"}, class: "num"}, formatMap(run.bestMap)),
      h("td", {dataset: {label: "Started"}}, when(run.startedAt) || "—"),
      h("td", {dataset: {label: "Finished"}}, when(run.finishedAt) || "—")))));
}
