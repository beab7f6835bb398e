"""The web view's HTML pages (sitewatch.web.pages): they render for any site id with the id
escaped, load only this server's own module scripts (no inline script or style, which the
CSP would block anyway), are never cached stale, and every file they reference exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")

from fastapi.testclient import TestClient

from sitewatch.web.app import create_app
from sitewatch.web.pages import STATIC

BASE = "http://127.0.0.1:8000"
HOSTILE = '<img src=x onerror=alert(1)>"&'
#: Files the panels and editor plug-in bring (loaded by the site page when present).
PLUGIN_FILES = {"css/panels.css", "js/panels.js", "js/editor.js"}


@pytest.fixture
def client(tmp_path: Path):
    with TestClient(create_app(tmp_path / "home", token="t" * 43), base_url=BASE) as c:
        yield c


PAGES = ["/", "/sites/sohae-sim", "/sites/sohae-sim/compare?before=A&after=B"]


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_with_module_scripts_only(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(' src="/static/' in s for s in scripts), scripts
    assert any('type="module"' in s for s in scripts)
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "inline script"
    assert not re.search(r"\sstyle=", html), "inline style attribute"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


def test_site_id_is_escaped_in_the_page(client: TestClient) -> None:
    from urllib.parse import quote

    for path in (f"/sites/{quote(HOSTILE, safe='')}",
                 f"/sites/{quote(HOSTILE, safe='')}/compare"):
        html = client.get(path).text
        assert "<img" not in html
        assert 'data-site="&lt;img src=x onerror=alert(1)&gt;&#34;&amp;"' in html


def test_site_page_has_the_containers_the_plugins_fill(client: TestClient) -> None:
    html = client.get("/sites/s1").text
    for ident in ("map", "dates", "timeline", "part-select", "panel-alerts", "panel-assessment",
                  "panel-collateral", "panel-brief", "panel-token", "editor-tools"):
        assert f'id="{ident}"' in html, ident
    compare = client.get("/sites/s1/compare").text
    for ident in ("compare-before", "compare-after", "swipe-toggle", "swipe-handle", "legend"):
        assert f'id="{ident}"' in compare, ident


def test_every_referenced_static_file_exists_and_scripts_are_javascript(
        client: TestClient) -> None:
    refs: set[str] = set()
    for path in PAGES:
        refs |= set(re.findall(r'(?:src|href)="/static/([^"]+)"', client.get(path).text))
    # Imports between the page's modules (static and dynamic).
    for js in (STATIC / "js").glob("*.js"):
        for target in re.findall(r"""(?:from|import\()\s*['"]\./([\w.-]+\.js)['"]""",
                                 js.read_text(encoding="utf-8")):
            refs.add(f"js/{target}")
    missing = sorted(r for r in refs - PLUGIN_FILES if not (STATIC / r).is_file())
    assert not missing
    for ref in sorted(r for r in refs if r.endswith(".js") and (STATIC / r).is_file()):
        r = client.get(f"/static/{ref}")
        assert r.status_code == 200
        # Module scripts are refused under nosniff unless served as JavaScript.
        assert "javascript" in r.headers["content-type"], ref


def test_page_scripts_never_parse_data_as_html() -> None:
    """The pages' own modules build DOM with textContent only (dom.js)."""
    for js in (STATIC / "js").glob("*.js"):
        if js.name in ("panels.js", "editor.js"):
            continue  # the plug-ins' own
        text = js.read_text(encoding="utf-8")
        for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert bad not in text, f"{js.name} uses {bad}"
