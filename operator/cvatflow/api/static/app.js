// Entry point: the sign-in box (the API's bearer token, kept for this browser tab only) and the pages.

import {api, ApiError, signInNeeded, token} from "./api.js";
import {announce, fill, h} from "./dom.js";
import {route, show, start, stop} from "./router.js";
import {runPage} from "./run.js";
import {runsPage} from "./runs.js";
import {trainPage} from "./train.js";
import {loadVocabulary, vocabularyLoaded} from "./vocabulary.js";

/** A page that uses the server's vocabulary: rendered once it is loaded (one request per tab). */
function withVocabulary(page) {
  return (main, match, search) => {
    if (vocabularyLoaded()) return page(main, match, search);
    let stopped = false;
    fill(main, h("p", {class: "loading"}, "Loading…"));
    loadVocabulary().then(() => { if (!stopped) show({focus: false}); },
                          (error) => { if (!stopped) fill(main, h("p", {class: "error"}, error.message)); });
    return () => { stopped = true; };
  };
}

route(/^\/ui$/, withVocabulary(trainPage));
route(/^\/ui\/runs$/, withVocabulary(runsPage));
route(/^\/ui\/runs\/([^/]+)$/, withVocabulary(runPage));

function signInBox(reason) {
  const input = h("input", {id: "token", name: "token", type: "password", autocomplete: "current-password",
                            required: true, "aria-describedby": "token-help token-error"});
  const error = h("p", {class: "error", id: "token-error", hidden: !reason}, reason || "");
  const form = h("form", {class: "signin", novalidate: true, "aria-labelledby": "signin-title"},
    h("h1", {id: "signin-title"}, "Sign in"),
    h("div", {class: "field"},
      h("label", {for: "token"}, "API token"),
      input,
      h("p", {class: "hint", id: "token-help"},
        "A token from the server's CVATFLOW_API_TOKENS (or, when none is set, the file <home>/api-token). "
        + "It is kept in this tab only."),
      error),
    h("div", {class: "actions"}, h("button", {type: "submit", class: "primary"}, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) { error.textContent = "Enter the API token."; error.hidden = false; input.focus(); return; }
    token.set(value);
    try {
      await api("/api/v1/templates?label=used-by%3Dcvat");
    } catch (failure) {
      token.clear();
      error.textContent = failure instanceof ApiError && failure.status === 401
        ? "This token is not accepted by the server." : failure.message;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    signedIn();
    announce("Signed in.");
    show();
  });
  return {form, input};
}

function signOutButton() {
  return document.getElementById("sign-out");
}

function signedIn() {
  signOutButton().hidden = false;
}

function askForToken(reason) {
  stop(); // the page's streams and polls would only be refused again
  token.clear();
  signOutButton().hidden = true;
  const {form, input} = signInBox(reason);
  fill(document.getElementById("main"), form);
  input.focus();
}

signInNeeded.addEventListener("needed", () => {
  if (document.querySelector("form.signin")) return;
  askForToken(token.get() ? "The server does not accept this token any more; sign in again." : "");
});
signOutButton().addEventListener("click", () => { askForToken(""); announce("Signed out."); });

/** Opened from the CVAT fork's link with no token in this tab: its `auth-token` cookie may already sign us in. */
async function signInWithCookie() {
  try {
    await api("/api/v1/templates?label=used-by%3Dcvat");
  } catch {
    return; // a 401 has already asked for the token
  }
  signOutButton().hidden = true; // the session is CVAT's: signing out happens there
  show({focus: false});
}

if (token.get()) {
  start();
  signedIn();
} else {
  start({render: false});
  signInWithCookie();
}
