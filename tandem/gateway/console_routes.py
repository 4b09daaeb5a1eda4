"""The agent console's page: ``GET /agent/`` and its own script and stylesheet under ``/agent/static/``.

Static files only (no template, no inline script or style: the page CSP applies). The console talks
to the agents' JSON API under ``/agent/api/``, installed elsewhere. Only the files in
:data:`CONSOLE_FILES` are served; any other name (including a path that tries to leave the
directory) is a 404 in the gateway's error shape.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

CONSOLE_DIR = Path(__file__).resolve().parent / "console"

# The allow-list: file name -> content type. Nothing else under /agent/static/ exists.
CONSOLE_FILES: dict[str, str] = {
    "console.js": "application/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

# The files have no content hash in their names: browsers must revalidate (FileResponse sends ETag
# and Last-Modified, so an unchanged file is a 304).
NO_CACHE = {"Cache-Control": "no-cache"}


def install_console_page(app: FastAPI, console_dir: Path) -> None:
    """``GET /agent`` (307 to ``/agent/``), ``GET /agent/`` and ``GET /agent/static/{name}``."""
    page = console_dir / "index.html"
    files = {name: (console_dir / name, media_type) for name, media_type in CONSOLE_FILES.items()}

    @app.get("/agent", include_in_schema=False)
    async def console_redirect() -> RedirectResponse:
        return RedirectResponse("/agent/", status_code=307)

    @app.get("/agent/", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(page, media_type="text/html; charset=utf-8", headers=NO_CACHE)

    @app.get("/agent/static/{name}", include_in_schema=False)
    async def console_static(name: str) -> FileResponse:
        entry = files.get(name)
        if entry is None:
            raise HTTPException(status_code=404)
        path, media_type = entry
        return FileResponse(path, media_type=media_type, headers=NO_CACHE)
