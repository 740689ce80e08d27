"""The web UI under /ui/: one HTML shell for every page, plus its static CSS and JavaScript.

The pages themselves hold no data and need no token; the scripts ask the API with the bearer token the user
signs in with (kept in sessionStorage), or, without one, with the Onepanel CVAT fork's `auth-token` cookie that
the browser sends by itself (api/auth.py checks it like the token), so a page is never more open than the API.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
PREFIX = "/ui"

# Everything the UI loads comes from this server; no inline scripts or styles, nothing may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The shell is tiny and changes with the scripts it names: always ask again rather than run stale code.
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _shell() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=SECURITY_HEADERS)


@router.get("")
def ui_root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


# The pages the scripts route between; each answers the same shell, so a reload or a shared link works.
@router.get("/")
@router.get("/runs")
def ui_page() -> FileResponse:
    return _shell()


@router.get("/runs/{run_id}")
def ui_run_page(run_id: str) -> FileResponse:
    if not run_id or len(run_id) > 253:
        raise HTTPException(404, "no such page")
    return _shell()


class _StaticFiles(StaticFiles):
    """Static files with the UI's security headers, revalidated on each load (they are small)."""

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response


def install(app: FastAPI) -> None:
    """Serve the UI on `app`: pages under /ui/, their files under /ui/static/; `/` leads there."""
    app.include_router(router)
    app.add_api_route("/", ui_root, include_in_schema=False)
    app.mount(f"{PREFIX}/static", _StaticFiles(directory=STATIC), name="ui-static")
