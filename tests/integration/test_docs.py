"""`/docs` and `/redoc` work offline: their pages name no other host, and every file they
load is served by the server itself with the right content type."""

from __future__ import annotations

import re

import httpx
import pytest

from conftest import ServerProcess

# src="...", href="...", spec-url="..." and Swagger UI's `url: '...'`
REFERENCE = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|\burl: '([^']+)'""")
EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


def referenced(html: str) -> list[str]:
    return [first or second for first, second in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_loads_only_local_files(server: ServerProcess, page: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        html = client.get(page)
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        assert not re.search(r"https?://", html.text), "the page names another host"
        policy = html.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data:;" in policy
        urls = referenced(html.text)
        assert "/openapi.json" in urls and any(url.endswith(".js") for url in urls)
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = client.get(url)
            assert asset.status_code == 200, url
            kind = EXPECTED_TYPES[url[url.rindex(".") :]]
            assert asset.headers["content-type"].startswith(kind), url
            assert len(asset.content) > 100, url


def test_unknown_docs_files_are_404(server: ServerProcess) -> None:
    for name in ("index.html", "..%2Fdocs.py", "swagger-ui-bundle.js.map"):
        assert httpx.get(f"{server.base_url}/docs/static/{name}").status_code == 404
