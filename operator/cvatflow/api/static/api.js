// The API as the pages use it: the bearer token from sign-in on every request, errors as ApiError.

const TOKEN_KEY = "cvatflow.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An answer that was not 2xx: the API's {message, problems: [{path, message, fix}]}. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `the server answered ${status}`);
    this.status = status;
    this.problems = Array.isArray(body?.problems) ? body.problems : [];
  }
}

// Whoever shows the sign-in box listens for this; any 401 means the token is missing or no longer accepted.
export const signInNeeded = new EventTarget();

// Without a token of its own the tab relies on the CVAT fork's `auth-token` cookie, which the browser sends by
// itself (the page never reads or keeps it); this header tells the server a page of its own sent the request.
function headers(extra = {}) {
  const value = token.get();
  const all = {...extra, "X-Requested-With": "cvatflow-ui"};
  return value ? {...all, Authorization: `Bearer ${value}`} : all;
}

async function check(answer) {
  if (answer.ok) return answer;
  let body = null;
  try { body = await answer.json(); } catch { /* not JSON: keep the status */ }
  if (answer.status === 401) signInNeeded.dispatchEvent(new Event("needed"));
  throw new ApiError(answer.status, body);
}

/** GET or POST JSON; resolves to the parsed body. */
export async function api(path, {method = "GET", body, signal} = {}) {
  const init = {method, signal, headers: headers(body === undefined ? {} : {"Content-Type": "application/json"})};
  if (body !== undefined) init.body = JSON.stringify(body);
  const answer = await check(await fetch(path, init));
  return answer.status === 204 ? null : answer.json();
}

/** PUT a file as the raw request body (an export upload); resolves to the parsed answer. */
export async function apiUpload(path, file, {signal} = {}) {
  const init = {method: "PUT", signal, body: file, headers: headers({"Content-Type": "application/zip"})};
  return (await check(await fetch(path, init))).json();
}

/** A file (an image) as an object URL the page may show; revoke it when the page goes. */
export async function apiBlobUrl(path, {signal} = {}) {
  return URL.createObjectURL(await (await check(await fetch(path, {headers: headers(), signal}))).blob());
}

export async function apiText(path, {signal} = {}) {
  return (await check(await fetch(path, {headers: headers(), signal}))).text();
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * Follow a server-sent events stream with fetch, so the token travels in a header (EventSource cannot send
 * one, and a token in the URL would end up in logs). Calls onEvent(type, data, id) per event; reconnects
 * with Last-Event-ID until an `end` event arrives or `signal` aborts.
 */
export async function followEvents(path, onEvent, {signal, retryMs = 2000} = {}) {
  let lastId = null;
  let ended = false;
  while (!ended && !signal?.aborted) {
    try {
      const extra = {Accept: "text/event-stream"};
      if (lastId !== null) extra["Last-Event-ID"] = lastId;
      const answer = await check(await fetch(path, {headers: headers(extra), signal}));
      for await (const event of parseStream(answer.body)) {
        if (event.id !== null) lastId = event.id;
        let data = event.data;
        try { data = JSON.parse(data); } catch { /* plain text data */ }
        onEvent(event.type, data, event.id);
        if (event.type === "end") { ended = true; break; }
      }
    } catch (error) {
      if (signal?.aborted || (error instanceof ApiError && error.status !== 503)) throw error;
    }
    if (!ended && !signal?.aborted) await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}

/** The events of an SSE byte stream (the WHATWG format: field lines, a blank line ends an event). */
async function* parseStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = {type: "message", data: [], id: null};
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (event.data.length) yield {type: event.type, data: event.data.join("\n"), id: event.id};
          event = {type: "message", data: [], id: null};
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the server's keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = text;
        else if (field === "data") event.data.push(text);
        else if (field === "id") event.id = text;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
