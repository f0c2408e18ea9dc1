"""The optional web page: `GET /` plus its script and style sheet, shipped in the package.

Only a fixed list of files is served (no path from the URL ever reaches the file system),
and the page gets a strict Content-Security-Policy: it loads nothing from other origins and
never needs inline script, so server text that slipped into the DOM could not run.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

router = APIRouter()

ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

# media-src blob: is for MediaSource and the finished recording; nothing else leaves 'self'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

HEADERS = {
    "Cache-Control": "no-cache",  # revalidate, so an upgraded server never runs a stale script
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("tts_service").joinpath("static", name).read_bytes()


def _asset(name: str) -> Response:
    headers = dict(HEADERS)
    if name == "index.html":
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return Response(_read(name), media_type=ASSETS[name], headers=headers)


# Plain `def`: the first read of each file happens in the thread pool, not on the event loop.
# Documented, since `POST /` (Piper's request) shares its path: a GET there is declared.
@router.get(
    "/",
    tags=["page"],
    response_class=Response,
    responses={200: {"description": "The page.", "content": {"text/html": {}}}},
)
def index() -> Response:
    """The web page."""
    return _asset("index.html")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """Browsers ask for this whatever the page links; answer with the page's SVG icon."""
    return _asset("favicon.svg")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """The page's script and style sheet; anything else is a 404."""
    if name not in ASSETS or name == "index.html":
        raise HTTPException(status_code=404, detail="no such static file")
    return _asset(name)
