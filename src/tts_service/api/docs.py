"""API documentation pages that work offline: `/docs` (Swagger UI) and `/redoc` (ReDoc).

FastAPI's own pages load their scripts from a CDN, so they are blank on a machine without
internet, where a self-hosted server often runs. The same scripts ship in the
`fastapi-offline` package (Swagger UI 5, which reads OpenAPI 3.1 documents, and ReDoc);
they are served from here under `/docs/static/`, from a fixed list of files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)

ASSETS_URL: Final = "/docs/static"
ASSETS_DIR: Final = Path(fastapi_offline.__file__).parent / "static"
ASSETS: Final[dict[str, str]] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# Off: the validator badge would send the document to an outside service.
SWAGGER_PARAMETERS: Final = {"validatorUrl": None}
# Nothing from other hosts (ReDoc's footer would fetch its maker's logo from a CDN); the
# pages' generated HTML needs inline script, and ReDoc inline styles and blob: workers.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _asset_url(request: Request, name: str) -> str:
    return f"{request.scope.get('root_path', '')}{ASSETS_URL}/{name}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Interactive documentation; its "Try it out" calls go to this same server."""
    return _local_only(
        get_swagger_ui_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - API",
            swagger_js_url=_asset_url(request, "swagger-ui-bundle.js"),
            swagger_css_url=_asset_url(request, "swagger-ui.css"),
            swagger_favicon_url=_asset_url(request, "favicon.png"),
            oauth2_redirect_url=None,  # no OAuth here: a bearer key at most
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """The same document as a readable reference."""
    return _local_only(
        get_redoc_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - API reference",
            redoc_js_url=_asset_url(request, "redoc.standalone.js"),
            redoc_favicon_url=_asset_url(request, "favicon.png"),
            with_google_fonts=False,
        )
    )


@router.get(ASSETS_URL + "/{name}")
async def asset(name: str) -> FileResponse:
    """One of the documentation pages' files; anything else is a 404."""
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail="no such documentation file")
    return FileResponse(
        ASSETS_DIR / name,
        media_type=ASSETS[name],
        headers={"Cache-Control": "max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
