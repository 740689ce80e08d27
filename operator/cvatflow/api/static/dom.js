// Small DOM helpers: build elements without innerHTML, so text from the API can never become markup.

/** h("a", {href: "/x", class: "btn"}, "text", child...): an element; `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Hint HTML from the API ("only links survive") rebuilt as text and safe links: defence in depth. */
export function safeHint(html) {
  const doc = new DOMParser().parseFromString(`<body>${html || ""}</body>`, "text/html");
  const out = document.createDocumentFragment();
  const walk = (node, into) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) into.append(child.textContent);
      else if (child.nodeName === "A" && /^https?:\/\//i.test(child.getAttribute("href") || "")) {
        into.append(h("a", {href: child.getAttribute("href"), target: "_blank", rel: "noopener noreferrer"},
                      child.textContent));
      } else if (child.nodeType === Node.ELEMENT_NODE) walk(child, into);
    }
  };
  walk(doc.body, out);
  return out;
}

/** Say something to screen readers and sighted users alike, in the page's one live region. */
export function announce(message, kind = "info") {
  const status = document.getElementById("status");
  status.textContent = message;
  status.dataset.kind = kind;
}

/** "2024-05-01T10:00:00Z" as local date and time; "" for nothing. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A phase as a coloured badge (the colour is never the only cue: the word is there). */
export function phaseBadge(phase) {
  return h("span", {class: `badge phase-${String(phase || "unknown").toLowerCase()}`}, phase || "unknown");
}

export function formatMap(value) {
  return typeof value === "number" ? value.toFixed(3) : "—";
}
