"""The web page's routes: served from the package, a fixed file list, off with `ui=False`."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tts_service.api import create_app
from tts_service.cli import build_parser, settings_from
from tts_service.config import Settings


def client(**settings: object) -> TestClient:
    # No `with`: the lifespan (voice loading, worker threads) is not needed to serve files.
    # localhost: TestClient's own "testserver" is no host the server answers for.
    app = create_app(Settings(**settings))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://localhost")


def test_index_is_the_page_with_a_strict_policy() -> None:
    response = client().get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<button id="speak" type="submit">Speak</button>' in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_page_loads_nothing_from_other_origins() -> None:
    page = client().get("/").text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script>" not in page  # only the external, same-origin script: CSP allows no inline


@pytest.mark.parametrize(
    ("name", "media_type", "marker"),
    [
        ("app.js", "text/javascript; charset=utf-8", 'fetch("synthesize"'),
        ("app.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"),
        ("favicon.svg", "image/svg+xml", "<svg"),
    ],
)
def test_static_assets(name: str, media_type: str, marker: str) -> None:
    response = client().get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert marker in response.text


def test_favicon_ico_is_the_svg_icon() -> None:
    app_client = client()
    response = app_client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.content == app_client.get("/static/favicon.svg").content


def test_script_never_puts_server_text_into_markup() -> None:
    script = client().get("/static/app.js").text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "document.write" not in script
    assert "localStorage" not in script and "sessionStorage" not in script  # key stays in memory


@pytest.mark.parametrize(
    "path",
    ["/static/index.html", "/static/missing.js", "/static/..%2Fconfig.py", "/static/%2e%2e/ui.py"],
)
def test_only_listed_files_are_served(path: str) -> None:
    response = client().get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_ui_off_removes_page_and_assets_but_not_the_api() -> None:
    app_client = client(ui=False)
    for path in ("/static/app.js", "/static/app.css", "/favicon.ico"):
        response = app_client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    # `POST /` (Piper's request) stays, so the page's path answers 405 to a GET.
    page = app_client.get("/")
    assert page.status_code == 405
    assert "html" not in page.headers["content-type"]
    assert app_client.get("/ping").json() == {"status": "ok"}


def test_no_ui_flag_turns_the_setting_off() -> None:
    assert settings_from(build_parser().parse_args(["serve", "--no-ui"])).ui is False
    assert settings_from(build_parser().parse_args(["serve"])).ui is True
