// The parameter form of a template: one control per public parameter, by its type, with its own errors.

import {h, safeHint} from "./dom.js";
import {vocab} from "./vocabulary.js";


const id = (name) => `param-${name}`;

function control(field, value, describedBy) {
  const common = {id: id(field.name), name: field.name, "aria-describedby": describedBy,
                  required: field.required || undefined, "aria-required": field.required ? "true" : undefined};
  switch (field.type) {
    case "input.number":
      // A text box, not type=number: the browser would silently drop what is not a number instead of
      // letting us say what is wrong with it.
      return h("input", {...common, type: "text", inputmode: "decimal", value, autocomplete: "off"});
    case "select.select":
    case "select.nodepool":
      return h("select", common, field.options.map((o) =>
        h("option", {value: o.value, selected: o.value === value || undefined}, o.name || o.value)));
    case "textarea.textarea":
      return Object.assign(h("textarea", {...common, rows: 4}), {value});
    case "editor.yaml":
      return Object.assign(h("textarea", {...common, rows: 8, class: "mono", spellcheck: "false",
                                          autocapitalize: "off", "aria-label": undefined}), {value});
    default:
      return h("input", {...common, type: "text", value, autocomplete: "off"});
  }
}

function radios(field, value, hintId, errorId) {
  return h("fieldset", {class: "field", id: id(field.name), "aria-describedby": `${hintId} ${errorId}`,
                        dataset: {param: field.name}},
    h("legend", {}, field.displayName, field.required ? h("span", {class: "req", "aria-hidden": "true"}, " *") : ""),
    h("div", {class: "radios"}, field.options.map((o, i) =>
      h("label", {class: "radio"},
        h("input", {type: "radio", name: field.name, value: o.value, id: `${id(field.name)}-${i}`,
                    checked: o.value === value || undefined, required: field.required || undefined}),
        ` ${o.name || o.value}`))),
    h("p", {class: "hint", id: hintId}, safeHint(field.hintHtml)),
    h("p", {class: "error", id: errorId, hidden: true}));
}

/** The form's fields (not `hidden` ones) for `fields` from GET /api/v1/templates/{name}; `values` prefill. */
export function renderFields(fields, values = {}) {
  return fields.filter((f) => f.type !== "hidden").map((field) => {
    const value = values[field.name] ?? field.value ?? "";
    const hintId = `${id(field.name)}-hint`;
    const errorId = `${id(field.name)}-error`;
    if (field.type === "input.radio") return radios(field, value, hintId, errorId);
    return h("div", {class: `field type-${field.type.replace(".", "-")}`, dataset: {param: field.name}},
      h("label", {for: id(field.name)}, field.displayName,
        field.required ? h("span", {class: "req"}, h("span", {"aria-hidden": "true"}, " *"),
                           h("span", {class: "sr-only"}, " (required)")) : ""),
      control(field, value, `${hintId} ${errorId}`),
      field.hintHtml || field.hint ? h("p", {class: "hint", id: hintId}, safeHint(field.hintHtml || field.hint)) : "",
      h("p", {class: "error", id: errorId, hidden: true}));
  });
}

/** The values to send: every shown parameter, except auto-filled ones left empty. */
export function collect(form, fields) {
  const data = new FormData(form);
  const values = {};
  for (const field of fields) {
    if (field.type === "hidden" || !data.has(field.name)) continue;
    const value = String(data.get(field.name));
    // Filled in by the server from the data when left empty; sending "" would only get in its way.
    if (value === "" && vocab.autoFilled.includes(field.name)) continue;
    values[field.name] = value;
  }
  return values;
}

/** What the browser can tell before asking the server: required values and numbers. */
export function validate(fields, values) {
  const problems = [];
  for (const field of fields) {
    if (field.type === "hidden") continue;
    const value = (values[field.name] ?? "").trim();
    if (field.required && value === "") {
      problems.push({path: field.name, message: `${field.displayName} is required`, fix: "give a value"});
    } else if (field.type === "input.number" && value !== "" && !Number.isFinite(Number(value))) {
      problems.push({path: field.name, message: `${field.displayName} must be a number, not "${value}"`,
                     fix: "give a number like 10"});
    }
  }
  return problems;
}

/** Show each problem at its field (path = parameter name); returns those that match no field. */
export function showProblems(form, problems) {
  clearProblems(form);
  const unplaced = [];
  let first = null;
  for (const problem of problems) {
    const box = form.querySelector(`[data-param="${CSS.escape(problem.path || "")}"]`)
      || form.querySelector(`[data-param="${CSS.escape(String(problem.path || "").replace(/^parameters\./, ""))}"]`);
    if (!box) { unplaced.push(problem); continue; }
    const error = box.querySelector(".error");
    const text = problem.fix ? `${problem.message} (${problem.fix})` : problem.message;
    error.textContent = error.hidden ? text : `${error.textContent} ${text}`;
    error.hidden = false;
    box.classList.add("invalid");
    const input = box.querySelector("input, select, textarea");
    (box.tagName === "FIELDSET" ? box.querySelectorAll("input") : [input]).forEach((el) =>
      el.setAttribute("aria-invalid", "true"));
    first ??= input;
  }
  first?.focus();
  return unplaced;
}

export function clearProblems(form) {
  for (const box of form.querySelectorAll(".invalid")) box.classList.remove("invalid");
  for (const error of form.querySelectorAll(".error")) { error.hidden = true; error.textContent = ""; }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}
