// One run, live: phase and progress from the server-sent events, loss and mAP charts, steps, logs, outputs,
// and what to do with a finished model (fine-tune from it, annotate a CVAT task with it).

import {api, apiBlobUrl, apiText, ApiError, followEvents} from "./api.js";
import {drawChart} from "./chart.js";
import {announce, fill, formatMap, h, phaseBadge, when} from "./dom.js";
import {navigate} from "./router.js";
import {checkpointNames, isFinished, vocab} from "./vocabulary.js";

const LOG_REFRESH_MS = 3000;
const JOB_POLL_MS = 1500;

export function runPage(main, match) {
  const id = decodeURIComponent(match[1]);
  const abort = new AbortController();
  const view = layout(id);
  fill(main, view.root);
  const run = {id, execution: null, phase: "", trainProgress: null, history: [], logsAt: 0, logTimer: null, blobs: []};

  const redraw = throttle(() => drawCharts(view, run.history));
  const refreshLogs = async () => {
    clearTimeout(run.logTimer);
    run.logsAt = Date.now();
    try {
      const text = await apiText(`/api/v1/executions/${encodeURIComponent(id)}/logs`, {signal: abort.signal});
      const atBottom = view.logs.scrollTop + view.logs.clientHeight >= view.logs.scrollHeight - 4;
      const {plain, events} = splitLog(text);
      view.logs.textContent = plain.join("\n") || "(no log lines yet)";
      view.eventLines.hidden = !events.length;
      view.eventCount.textContent = `${events.length} JSON event line${events.length === 1 ? "" : "s"} (drawn above)`;
      view.eventText.textContent = events.join("\n");
      if (atBottom) view.logs.scrollTop = view.logs.scrollHeight;
    } catch (error) {
      if (!abort.signal.aborted) view.logs.textContent = `Could not read the logs: ${error.message}`;
    }
  };
  const logsSoon = () => {
    // Logs change with every line; refetch at most every few seconds while the run goes on.
    if (run.logTimer) return;
    const wait = Math.max(0, LOG_REFRESH_MS - (Date.now() - run.logsAt));
    run.logTimer = setTimeout(() => { run.logTimer = null; refreshLogs(); }, wait);
  };
  const reload = async () => {
    try {
      run.execution = await api(`/api/v1/executions/${encodeURIComponent(id)}`, {signal: abort.signal});
      showExecution(view, run);
      return true;
    } catch (error) {
      if (!abort.signal.aborted) showError(view, error);
      return false;
    }
  };

  const onEvent = (type, data) => {
    if (type === "preparation") {
      setPhase(view, run, data.state === "failed" ? vocab.phase.ERROR : vocab.phase.PREPARING);
      setProgress(view, data.total ? data.done : null, data.total, `Preparing: ${data.stage || data.state}`
        + (data.total ? ` ${data.done}/${data.total}` : "") + (data.message ? ` (${data.message})` : ""));
    } else if (type === "status") {
      setPhase(view, run, data.phase);
      showSteps(view, data.steps || []);
      showProgress(view, run, data.progress);
      logsSoon();
    } else if (type === "training") {
      if (data.event_type === "EventType.METRICS") {
        run.history.push(data);
        redraw();
      } else if (data.event_type === "EventType.PROGRESS" && data.subtask === "train") {
        run.trainProgress = data;
        showProgress(view, run, "");
      }
      logsSoon();
    } else if (type === "end") {
      setPhase(view, run, data.phase);
      announce(`Run ${id} ended: ${data.phase}${data.message ? `, ${data.message}` : ""}.`,
               data.phase === vocab.phase.SUCCEEDED ? "info" : "error");
      reload().then(refreshLogs);
    }
  };

  reload().then((found) => {
    if (!found) return;
    followEvents(`/api/v1/executions/${encodeURIComponent(id)}/events`, onEvent, {signal: abort.signal})
      .catch((error) => { if (!abort.signal.aborted) view.live.textContent = `Live updates stopped: ${error.message}`; });
    refreshLogs();
  });
  view.useCheckpoint.addEventListener("click", () => useAsCheckpoint(run, view));
  view.annotateToggle.addEventListener("click", () => toggleAnnotate(view, run, abort.signal));
  view.refreshLogs.addEventListener("click", refreshLogs);
  view.stop.addEventListener("click", () => stopRun(view, run, abort.signal));
  // Charts are drawn at their box's width: draw again when it changes (a rotated phone, a resized window).
  let drawnWidth = 0;
  const resized = new ResizeObserver(([entry]) => {
    const width = Math.round(entry.contentRect.width);
    if (width !== drawnWidth) { drawnWidth = width; redraw(); }
  });
  resized.observe(view.loss);
  return () => { abort.abort(); clearTimeout(run.logTimer); resized.disconnect(); run.blobs.forEach((u) => URL.revokeObjectURL(u)); };
}

/** Ask the server to stop the run; the events stream then shows it end. */
async function stopRun(view, run, signal) {
  view.stop.disabled = true;
  view.stop.dataset.asked = "yes";
  try {
    await api(`/api/v1/executions/${encodeURIComponent(run.id)}/stop`, {method: "POST", signal});
    announce(`Stopping run ${run.id}…`, "info");
  } catch (error) {
    view.stop.dataset.asked = "";
    view.stop.disabled = isFinished(run.phase);
    if (!signal.aborted) announce(`Could not stop the run: ${error.message}`, "error");
  }
}

function layout(id) {
  const v = {};
  v.phase = h("span", {id: "run-phase", "aria-live": "polite"});
  v.meta = h("dl", {class: "meta"});
  v.progress = h("progress", {id: "run-progress", max: 1, "aria-labelledby": "run-progress-label"});
  v.progressLabel = h("span", {id: "run-progress-label"}, "Waiting for the first update…");
  v.live = h("p", {class: "muted"});
  v.useCheckpoint = h("button", {type: "button", disabled: true, id: "use-checkpoint"}, "Use as fine-tune checkpoint");
  v.annotateToggle = h("button", {type: "button", disabled: true, "aria-expanded": "false", "aria-controls": "annotate",
                                  id: "annotate-toggle"}, "Annotate a CVAT task");
  v.annotate = h("div", {id: "annotate", hidden: true});
  // Argo's stop: no new step starts, the running one is asked to end (the training keeps its last.pt).
  v.stop = h("button", {type: "button", disabled: true, id: "stop-run"}, "Stop");
  v.actionNote = h("p", {class: "muted", id: "action-note"});
  v.steps = h("ol", {class: "steps", id: "run-steps"});
  v.loss = h("figure", {class: "chart-box", id: "loss-chart"}, h("figcaption", {}, "Loss"));
  v.map = h("figure", {class: "chart-box", id: "map-chart"}, h("figcaption", {}, "mAP"));
  v.outputs = h("dl", {class: "outputs", id: "run-outputs"});
  v.reportBody = h("div", {class: "report"});
  v.report = h("section", {"aria-labelledby": "report-title", class: "span-2", id: "run-report", hidden: true},
    h("h2", {id: "report-title"}, "Report"), v.reportBody);
  v.settings = h("dl", {class: "outputs", id: "run-hyperparameters"});
  v.logs = h("pre", {class: "logs", id: "run-logs", tabindex: "0", "aria-label": "Logs"}, "Loading…");
  v.refreshLogs = h("button", {type: "button", class: "link"}, "Refresh");
  // The JSON event lines feed the charts; folded away so the log reads as the training printed it.
  v.eventCount = h("summary", {}, "");
  v.eventText = h("pre", {class: "logs", id: "run-events", tabindex: "0", "aria-label": "JSON event lines"});
  v.eventLines = h("details", {id: "run-event-lines", hidden: true}, v.eventCount, v.eventText);
  v.error = h("div", {class: "error-box", role: "alert", hidden: true});
  v.root = h("div", {class: "run"},
    h("p", {class: "crumbs"}, h("a", {href: "/ui/runs"}, "Runs"), " / "),
    h("div", {class: "page-head"}, h("h1", {class: "run-id"}, id), v.phase),
    v.error,
    v.meta,
    h("div", {class: "progress-row"}, v.progress, v.progressLabel),
    v.live,
    h("div", {class: "actions"}, v.useCheckpoint, v.annotateToggle, v.stop),
    v.actionNote, v.annotate,
    h("div", {class: "grid"},
      h("section", {"aria-labelledby": "charts-title", class: "span-2"}, h("h2", {id: "charts-title"}, "Metrics"),
        h("div", {class: "charts"}, v.loss, v.map)),
      v.report,
      h("section", {"aria-labelledby": "steps-title"}, h("h2", {id: "steps-title"}, "Steps"), v.steps),
      h("section", {"aria-labelledby": "outputs-title"}, h("h2", {id: "outputs-title"}, "Outputs"), v.outputs),
      h("section", {"aria-labelledby": "hp-title"}, h("h2", {id: "hp-title"}, "Hyperparameters"), v.settings),
      h("section", {"aria-labelledby": "logs-title", class: "span-2"},
        h("div", {class: "section-head"}, h("h2", {id: "logs-title"}, "Logs"), v.refreshLogs), v.logs,
        v.eventLines)));
  drawCharts(v, []);
  return v;
}

/** The log's lines split into plain ones and JSON event lines (DESIGN.md, Events: an object with event_type). */
export function splitLog(text) {
  const plain = [];
  const events = [];
  for (const line of (text || "").split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    let event = null;
    if (trimmed.startsWith("{")) {
      try { event = JSON.parse(trimmed); } catch { /* a line that only looks like JSON stays plain */ }
    }
    (event && typeof event === "object" && "event_type" in event ? events : plain).push(line);
  }
  return {plain, events};
}

function showError(view, error) {
  fill(view.error, error instanceof ApiError && error.status === 404 ? `No run named ${view.root.querySelector("h1").textContent}.` : error.message);
  view.error.hidden = false;
}

function setPhase(view, run, phase) {
  if (!phase || phase === run.phase) return;
  run.phase = phase;
  fill(view.phase, phaseBadge(phase));
  const done = phase === vocab.phase.SUCCEEDED;
  view.useCheckpoint.disabled = !done;
  view.annotateToggle.disabled = !done;
  view.actionNote.textContent = done ? "" : "The model can be used once the run has succeeded.";
  view.stop.disabled = isFinished(phase) || phase === vocab.phase.PREPARING || view.stop.dataset.asked === "yes";
  if (isFinished(phase)) setProgress(view, 1, 1, phase === vocab.phase.SUCCEEDED ? "Done" : `Ended: ${phase}`);
  if (done) showReport(view, run);
}

/** The training's report (report/ in the run's output): the PR curve it plotted and the per-class AP. */
async function showReport(view, run) {
  const base = `/api/v1/executions/${encodeURIComponent(run.id)}/report`;
  view.report.hidden = false;
  fill(view.reportBody, h("p", {class: "loading"}, "Loading the report…"));
  const parts = [];
  try {
    const metrics = await api(`${base}/metrics.json`);
    const perClass = Object.entries(metrics.per_class || {});
    if (perClass.length) {
      parts.push(h("table", {id: "per-class-ap"},
        h("caption", {}, "AP per class (best model, validation)"),
        h("thead", {}, h("tr", {}, ["Class", "AP", ""].map((t) => h("th", {scope: "col"}, t)))),
        h("tbody", {}, perClass.map(([name, value]) => h("tr", {dataset: {cls: name}},
          h("td", {}, name), h("td", {}, formatMap(value.AP)),
          h("td", {}, h("meter", {min: 0, max: 1, value: Math.max(0, value.AP), "aria-label": `AP of ${name}`})))))));
    }
  } catch (error) {
    parts.push(h("p", {class: "muted"}, `No metrics.json in the report: ${error.message}`));
  }
  for (const [file, alt] of [["pr_curve.png", "Precision-recall curve"], ["loss.png", "Training loss, as plotted by the training"],
                             ["map.png", "Validation mAP, as plotted by the training"]]) {
    try {
      const url = await apiBlobUrl(`${base}/${file}`);
      run.blobs.push(url);
      parts.push(h("figure", {class: "report-plot"}, h("img", {src: url, alt, dataset: {file}}), h("figcaption", {}, alt)));
    } catch { /* this training did not plot it */ }
  }
  fill(view.reportBody, ...(parts.length ? parts : [h("p", {class: "muted"}, "The training wrote no report.")]));
}

function setProgress(view, value, total, text) {
  if (value === null || !total) view.progress.removeAttribute("value");
  else { view.progress.max = total; view.progress.value = value; }
  view.progressLabel.textContent = text;
}

function showProgress(view, run, argoProgress) {
  if (isFinished(run.phase)) return;
  const p = run.trainProgress;
  if (p && p.total) setProgress(view, p.current, p.total, `Training: step ${p.current} of ${p.total}`);
  else {
    const [done, total] = String(argoProgress || "").split("/").map(Number);
    setProgress(view, total ? done : null, total, total ? `${run.phase}: ${done} of ${total} steps` : run.phase);
  }
}

function showSteps(view, steps) {
  fill(view.steps, steps.length ? steps.map((s) => h("li", {dataset: {step: s.name}},
    h("span", {class: "step-name"}, s.name), " ", phaseBadge(s.phase),
    s.message ? h("span", {class: "muted"}, ` ${s.message}`) : "")) : h("li", {class: "muted"}, "No steps yet."));
}

function showExecution(view, run) {
  const e = run.execution;
  setPhase(view, run, e.phase);
  const rows = [["Template", e.template], ["CVAT task", e.cvatTask ?? "—"], ["Started", when(e.startedAt) || "—"],
                ["Finished", when(e.finishedAt) || "—"], ["Best mAP", formatMap(e.metrics?.bestMap ?? e.bestMap)]];
  if (e.message) rows.push(["Message", e.message]);
  fill(view.meta, rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
  if (e.steps?.length) showSteps(view, e.steps);
  else if (!view.steps.children.length) showSteps(view, []);
  const outputs = Object.entries(e.outputs || {});
  fill(view.outputs, outputs.length ? outputs.map(([name, uri]) => h("div", {},
    h("dt", {}, name),
    h("dd", {}, /^https?:\/\//.test(uri) ? h("a", {href: uri, target: "_blank", rel: "noopener"}, uri) : h("code", {}, uri))))
    : h("p", {class: "muted"}, "No outputs yet."));
  const settings = Object.entries(e.hyperparameters || {});  // effective values and where each came from
  fill(view.settings, settings.length ? settings.map(([key, s]) => h("div", {},
    h("dt", {}, key), h("dd", {}, h("code", {}, String(s.value)), " ", h("span", {class: "muted"}, `(${s.source})`))))
    : h("p", {class: "muted"}, "None recorded."));
  if (e.problems?.length) {
    fill(view.error, h("ul", {}, e.problems.map((p) => h("li", {}, `${p.path ? `${p.path}: ` : ""}${p.message}`))));
    view.error.hidden = false;
  }
  if (isFinished(e.phase)) setProgress(view, 1, 1, e.phase === vocab.phase.SUCCEEDED ? "Done" : `Ended: ${e.phase}`);
  else showProgress(view, run, e.progress);
}

/** Loss: every metric whose name has "loss" in it; mAP: the validation metrics named like map. */
function drawCharts(view, history) {
  const series = (test) => {
    const out = new Map();
    history.forEach((event, index) => {
      for (const [key, value] of Object.entries(event.metrics || {})) {
        if (!test(key) || typeof value !== "number") continue;
        const name = `${event.type || "train"} ${key}`;
        if (!out.has(name)) out.set(name, {name, points: []});
        out.get(name).points.push([typeof event.epoch === "number" ? event.epoch : index, value]);
      }
    });
    return [...out.values()];
  };
  drawChart(view.loss, series((k) => /loss/i.test(k)), {empty: "No loss reported yet."});
  drawChart(view.map, series((k) => /^(m?ap|map)(50|75|_?\d+)?$/i.test(k) || /^mAP/i.test(k)), {empty: "No mAP reported yet."});
}

function throttle(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}

async function useAsCheckpoint(run, view) {
  const e = run.execution;
  try {
    // The store-relative prefix of the run's output, as `cvat-finetune-checkpoint` takes it (the server says).
    const key = e.outputKey;
    if (!key) throw new Error("the run's output prefix is not in the object store");
    const names = checkpointNames();
    const name = names.find((n) => n in (e.parameters || {})) || names[0];
    const search = new URLSearchParams({template: e.template});
    if (e.cvatTask) search.set("task", e.cvatTask);
    search.set(`param.${name}`, key);
    navigate(`/ui/?${search}`);
  } catch (error) {
    view.actionNote.textContent = `Cannot use this run as a checkpoint: ${error.message}`;
  }
}

async function toggleAnnotate(view, run, signal) {
  const open = view.annotate.hidden;
  view.annotate.hidden = !open;
  view.annotateToggle.setAttribute("aria-expanded", String(open));
  if (!open || view.annotate.childElementCount) return;
  const select = h("select", {id: "annotate-task", name: "cvatTask", required: true});
  const threshold = h("input", {id: "annotate-threshold", name: "threshold", type: "text", inputmode: "decimal", value: "0.5"});
  const clear = h("input", {id: "annotate-clear", name: "clearExisting", type: "checkbox"});
  const state = h("p", {id: "annotate-state", "aria-live": "polite"});
  const submit = h("button", {type: "submit", class: "primary"}, "Run annotate-task on the cluster");
  const form = h("form", {class: "annotate", novalidate: true, "aria-labelledby": "annotate-title"},
    h("h2", {id: "annotate-title"}, "Annotate a CVAT task with this model"),
    h("div", {class: "field"}, h("label", {for: "annotate-task"}, "CVAT task"), select),
    h("div", {class: "field"}, h("label", {for: "annotate-threshold"}, "Score threshold (0 to 1)"), threshold),
    h("div", {class: "field"}, clear, h("label", {for: "annotate-clear"}, "Replace the task's annotations")),
    h("div", {class: "actions"}, submit), state);
  fill(view.annotate, form);
  try {
    const {items} = await api("/api/v1/cvat/tasks", {signal});
    fill(select, items.map((t) => h("option", {value: t.id, selected: t.id === run.execution?.cvatTask || undefined},
                                     `${t.id}: ${t.name}`)));
  } catch (error) {
    state.textContent = `Could not list the CVAT tasks: ${error.message}`;
  }
  select.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = Number(threshold.value);
    if (!(value >= 0 && value <= 1)) { state.textContent = "The threshold must be a number from 0 to 1."; threshold.focus(); return; }
    submit.disabled = true;
    try {
      let job = await api(`/api/v1/executions/${encodeURIComponent(run.id)}/annotate`, {method: "POST",
        body: {cvatTask: Number(select.value), threshold: value, clearExisting: clear.checked}});
      while (!signal.aborted) {
        state.textContent = `Annotation job ${job.id}: ${job.state}${job.stage ? `, ${job.stage}` : ""}`
          + (job.total ? ` ${job.done}/${job.total}` : "") + (job.message ? ` (${job.message})` : "");
        if (job.state === "succeeded" || job.state === "failed") break;
        await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
        job = await api(`/api/v1/jobs/${encodeURIComponent(job.id)}`, {signal});
      }
    } catch (error) {
      if (!signal.aborted) state.textContent = `The annotation was not started: ${error.message}`;
    } finally {
      submit.disabled = false;
    }
  });
}
