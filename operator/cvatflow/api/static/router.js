// Client-side routing between the UI's pages: links under /ui/ swap the page without a reload.

const routes = [];
let cleanup = null;

/** route(/^\/ui\/runs\/([^/]+)$/, (main, match, search) => cleanupFunction?) */
export function route(pattern, render) {
  routes.push({pattern, render});
}

export function navigate(url, {replace = false} = {}) {
  history[replace ? "replaceState" : "pushState"](null, "", url);
  show();
}

/** Stop the current page (its streams, its timers). */
export function stop() {
  cleanup?.();
  cleanup = null;
}

/** Render the page for the current location into <main>, moving focus there as a page load would. */
export function show({focus = true} = {}) {
  stop();
  const main = document.getElementById("main");
  main.replaceChildren();
  const path = location.pathname.replace(/\/+$/, "") || "/ui";
  for (const {pattern, render} of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("[data-nav]")) {
      const current = link.dataset.nav === (path.startsWith("/ui/runs") ? "runs" : "train");
      if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
    cleanup = render(main, match, new URLSearchParams(location.search)) || null;
    if (focus) main.focus({preventScroll: true});
    return;
  }
  main.textContent = "No such page.";
}

/** Follow same-origin /ui/ links in place; anything else (new tab, other pages) is left to the browser. */
export function start({render = true} = {}) {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey
        || event.shiftKey || event.altKey || link.target) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith("/ui") || url.pathname.startsWith("/ui/static")) {
      return;
    }
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  addEventListener("popstate", () => show());
  if (render) show({focus: false});
}
