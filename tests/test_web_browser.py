"""The web view in a real Chromium (Playwright): `sitewatch serve`'s app over a copy of the
demo's home, driven the way an analyst uses it.

One server and one browser for the module (tests/web_server.py); each test opens a fresh
browser context (its own sessionStorage, so no token unless the test sets one).  Skipped
with the reason when Playwright or Chromium is missing, failed instead under
SITEWATCH_REQUIRE_SERVICES=1.  Every test saves a screenshot under its tmp dir, and the main
pages also under $SITEWATCH_SCREENSHOTS when that is set (to look at them).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import _services_required
from web_server import CHROMIUM_ARGS, Served, chromium_path, missing_browser, serve

SITE = "sohae-sim"
#: Milliseconds Playwright waits for an element or a page (a bound, not a measurement: the
#: first tiles of a page are rendered from the scenes on demand).
WAIT_MS = 30_000
INJECT = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    """The app over a copy of the session's demo home (the demo's own home is shared)."""
    why = missing_browser()
    if why and _services_required():
        pytest.fail(f"browser tests required (SITEWATCH_REQUIRE_SERVICES=1) but: {why}",
                    pytrace=False)
    if why:
        pytest.skip(f"browser tests unavailable: {why}")
    demo_run = request.getfixturevalue("demo_run")
    home = tmp_path_factory.mktemp("web") / "home"
    shutil.copytree(demo_run.home, home)
    with serve(home) as server:
        yield server


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Tab:
    """A page with what went wrong on it: console errors, page errors, failed requests."""

    page: Any
    url: str
    shots: Path
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(self.url + path, wait_until="load")

    def shot(self, name: str, *, full: bool = True, keep: bool = False) -> Path:
        """A screenshot under the test's tmp dir (and $SITEWATCH_SCREENSHOTS with keep)."""
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full)
        out = os.environ.get("SITEWATCH_SCREENSHOTS")
        if keep and out:
            Path(out).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(out) / path.name)
        return path

    def clean(self, allowed: tuple[str, ...] = ()) -> None:
        """No console or page errors and no failed request, except those naming ``allowed``."""
        def bad(items: list[str]) -> list[str]:
            return [m for m in items if not any(a in m for a in allowed)]
        assert not bad(self.errors), self.errors
        assert not bad(self.failed), self.failed


@pytest.fixture
def tab(browser: Any, served: Served, tmp_path: Path) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    t = Tab(page, served.url, tmp_path)
    page.on("console", lambda m: t.errors.append(f"console: {m.text} ({m.location.get('url')})")
            if m.type == "error" and not _favicon(m.location.get("url")) else None)
    page.on("pageerror", lambda e: t.errors.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: t.failed.append(f"{r.method} {r.url}: {r.failure}"))
    page.on("response", lambda r: t.failed.append(f"{r.request.method} {r.url}: {r.status}")
            if r.status >= 400 else None)
    try:
        yield t
    finally:
        context.close()


def _favicon(url: str | None) -> bool:
    # The browser asks for /favicon.ico by itself; the pages declare no icon (yet).
    return url is not None and url.endswith("/favicon.ico")


def open_site(tab: Tab, query: str = "") -> None:
    """The site's page, with its alerts listed and imagery tiles drawn."""
    tab.goto(f"/sites/{SITE}{query}")
    tab.page.wait_for_selector("#panel-alerts li.alert")
    tab.page.wait_for_selector("#map img.leaflet-tile-loaded")
    tab.page.wait_for_load_state("networkidle")


def set_token(tab: Tab, token: str) -> None:
    page = tab.page
    page.click("#panel-token summary")
    page.fill("#token-input", token)
    page.click("#token-use")
    page.wait_for_selector("#panel-token .token-set")


def alerts(served: Served) -> list[dict[str, Any]]:
    return served.get_json(f"/api/sites/{SITE}/alerts")


def an_alert(served: Served, status: str = "new", skip: int = 0) -> dict[str, Any]:
    found = [a for a in alerts(served) if a["status"] == status and a.get("before_scene")]
    assert len(found) > skip, f"the demo has too few {status} alerts"
    return found[skip]


def alert_item(tab: Tab, alert_id: str) -> Any:
    return tab.page.locator(f"li.alert[data-alert='{alert_id}']")


# ------------------------------------------------------------------------------ the tests


def test_sites_list_shows_the_demo_site(tab: Tab) -> None:
    tab.goto("/")
    tab.page.wait_for_selector(f"#sites :text('{SITE}')")
    tab.page.wait_for_load_state("networkidle")
    tab.shot("sites", keep=True)
    assert SITE in tab.page.inner_text("#sites")
    tab.clean()


def test_site_page_loads_clean(tab: Tab, served: Served) -> None:
    open_site(tab)
    tab.shot("site", keep=True)
    page = tab.page
    # The panels are there and filled from the API.
    listed = page.locator("#panel-alerts li.alert").count()
    open_alerts = [a for a in alerts(served) if a["status"] in ("new", "seen")]
    assert listed == len(open_alerts) > 0
    page.wait_for_selector("#panel-assessment section.event")
    assert "Launch" in page.inner_text("#panel-assessment")
    page.wait_for_selector("#panel-collateral li.report")
    assert page.locator("#panel-brief").inner_text().strip()
    assert "no write token" in page.inner_text("#panel-token")
    tab.clean()


def test_map_shows_imagery(tab: Tab) -> None:
    open_site(tab)
    png = tab.page.locator("#map").screenshot(path=str(tab.shots / "map.png"))
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    h, w, _ = rgb.shape
    inner = rgb[h // 8: -h // 8, w // 8: -w // 8]  # leave the controls and attribution
    colours = len(np.unique(inner.reshape(-1, 3), axis=0))
    assert colours > 1000, f"only {colours} distinct colours: blank or flat tiles?"
    assert float(inner.std()) > 10.0
    tab.clean()


def test_clicking_an_alert_opens_compare_on_its_dates(tab: Tab, served: Served) -> None:
    a = an_alert(served)
    open_site(tab)
    alert_item(tab, a["id"]).locator(".alert-text").click()
    page = tab.page
    page.wait_for_url("**/compare**")
    page.wait_for_function(
        "([b, a]) => document.querySelector('#compare-before')?.value === b"
        " && document.querySelector('#compare-after')?.value === a",
        arg=[a["before_scene"], a["after_scene"]])
    page.wait_for_selector("#map-before img.leaflet-tile-loaded")
    page.wait_for_selector("#map-after img.leaflet-tile-loaded")
    page.wait_for_load_state("networkidle")
    tab.shot("compare", keep=True)
    assert page.input_value("#compare-before") == a["before_scene"]
    assert page.input_value("#compare-after") == a["after_scene"]
    tab.clean()


def test_timeline_shows_the_alert(tab: Tab, served: Served) -> None:
    a = an_alert(served, skip=1)
    open_site(tab)
    alert_item(tab, a["id"]).locator("button[data-action=timeline]").click()
    marker = tab.page.locator(f"#timeline svg [data-alert='{a['id']}']")
    marker.first.wait_for()
    tab.shot("timeline")
    assert marker.count() >= 1
    tab.clean()


def test_dismiss_needs_the_token(tab: Tab, served: Served) -> None:
    a = an_alert(served, skip=2)
    open_site(tab)
    item = alert_item(tab, a["id"])
    page = tab.page
    # A reason is required.
    item.locator("button[data-action=dismiss]").click()
    item.locator(".dismiss-send").click()
    assert "reason is required" in item.locator(".alert-message").inner_text()
    # Without the token: the server's message next to the alert, the alert unchanged.
    item.locator(".dismiss-reason").fill("cloud edge, not activity")
    item.locator(".dismiss-send").click()
    page.wait_for_function(
        "id => document.querySelector(`li.alert[data-alert='${id}'] .alert-message`)"
        "?.textContent.includes('token')", arg=a["id"])
    assert item.locator(".alert-status").inner_text() == a["status"]
    assert {x["id"]: x for x in alerts(served)}[a["id"]]["status"] == a["status"]
    tab.shot("dismiss-refused")
    # With it: dismissed, here and in the catalogue.
    set_token(tab, served.token)
    item.locator("button[data-action=dismiss]").click()
    item.locator(".dismiss-reason").fill("cloud edge, not activity")
    item.locator(".dismiss-send").click()
    page.wait_for_function(
        "id => document.querySelector(`li.alert[data-alert='${id}'] .alert-status`)"
        "?.textContent === 'dismissed'", arg=a["id"])
    page.wait_for_load_state("networkidle")
    stored = {x["id"]: x for x in alerts(served)}[a["id"]]
    assert stored["status"] == "dismissed"
    assert stored.get("status_reason") == "cloud edge, not activity"
    assert "cloud edge" in alert_item(tab, a["id"]).inner_text()
    tab.shot("dismissed")
    tab.clean(allowed=(f"/alerts/{a['id']}: 401", "401 (Unauthorized)"))


def test_editor_draws_and_saves_a_part(tab: Tab, served: Served) -> None:
    from sitewatch.cli.main import cli

    open_site(tab)
    set_token(tab, served.token)
    page = tab.page
    page.click("#edit-toggle")
    page.wait_for_selector("#edit-save")
    page.click("#edit-draw")
    box = page.locator("#map").bounding_box()
    assert box
    # A square a little below and left of the centre (the map shows the whole site).
    cx, cy = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.62
    corners = [(cx - 25, cy - 20), (cx + 25, cy - 20), (cx + 25, cy + 20), (cx - 25, cy + 20)]
    for x, y in [*corners, corners[0]]:
        page.mouse.click(x, y)
    page.wait_for_selector("#part-name:visible")
    page.fill("#part-name", "test_shelter")
    page.select_option("#part-kind", "storage_area")
    page.click("#part-apply")
    tab.shot("editor", keep=True)
    page.click("#edit-save")
    page.wait_for_function(
        "() => /updated|unchanged|error|outside/i.test("
        "document.querySelector('#edit-status')?.textContent || '')")
    assert "updated" in page.inner_text("#edit-status"), page.inner_text("#edit-status")
    tab.shot("editor-saved")
    shown = CliRunner().invoke(cli, ["--home", str(served.home), "site", "show", SITE])
    assert shown.exit_code == 0, shown.output
    assert "test_shelter" in shown.output
    site = served.get_json(f"/api/sites/{SITE}")
    assert "test_shelter" in {f["properties"]["name"] for f in site["parts"]["features"]}
    tab.clean()


def test_injected_markup_stays_text(tab: Tab, served: Served) -> None:
    # A report titled with markup, a note and a part label holding it: stored via the API.
    status, _ = served.send("POST", f"/api/sites/{SITE}/reports",
                            {"title": f"Report {INJECT}", "published": "2024-10-01",
                             "text": f"Activity at the pad. {INJECT}"})
    assert status == 201
    status, _ = served.send("POST", f"/api/sites/{SITE}/notes",
                            {"text": f"note {INJECT}", "when": "2024-10-02"})
    assert status == 201
    site = served.get_json(f"/api/sites/{SITE}")
    parts = [{"name": f["properties"]["name"], "kind": f["properties"]["kind"],
              "geometry": f["geometry"], "was": f["properties"]["name"]}
             for f in site["parts"]["features"]]
    target = an_alert(served)["part"]
    for p in parts:
        if p["name"] == target:
            p["label"] = f"Pad {INJECT}"
    status, answer = served.send("PUT", f"/api/sites/{SITE}/parts", {"parts": parts})
    assert status == 200, answer
    # A part name holding markup is refused (names are file-safe words).
    bad = [*parts, {"name": INJECT, "kind": parts[0]["kind"], "geometry": None, "was": None}]
    status, answer = served.send("PUT", f"/api/sites/{SITE}/parts", {"parts": bad})
    assert status == 422, answer

    open_site(tab)
    page = tab.page
    page.wait_for_selector("#panel-collateral li.note")
    tab.shot("injected")
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0
    assert INJECT in page.inner_text("#panel-collateral")  # the title and the note, as text
    assert f"Pad {INJECT}" in page.inner_text("#panel-alerts")  # the part's label
    # The editor refuses the name and says so as text.
    set_token(tab, served.token)
    page.click("#edit-toggle")
    paths = page.locator("#map path.sw-edit-part")
    # The largest part on screen: small ones sit under labels and markers at site zoom.
    areas = [(b["width"] * b["height"], i) for i in range(paths.count())
             if (b := paths.nth(i).bounding_box())]
    paths.nth(max(areas)[1]).click(force=True)
    page.wait_for_selector("#part-name:visible")
    page.fill("#part-name", INJECT)
    page.click("#part-apply")
    assert INJECT in page.inner_text("#edit-status")
    page.click("#edit-cancel")
    assert page.evaluate("() => window.__pwned") is None
    tab.clean()


def test_read_only_server_hides_writes(browser: Any, served: Served, tmp_path: Path) -> None:
    # The same home served read-only (`sitewatch serve --read-only`): the page says writes
    # are off and shows no write control, whatever token the tab holds.
    with serve(served.home, read_only=True) as ro:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            t = Tab(page, ro.url, tmp_path)
            open_site(t)
            page.wait_for_selector("#panel-token .token-readonly")
            assert "read-only" in page.inner_text("#panel-token")
            assert page.locator("button[data-action=dismiss]").first.is_hidden()
            assert page.locator("#edit-toggle").is_hidden()
            assert page.locator("#brief-write").is_hidden()
            assert page.locator("#panel-collateral form.note-form").is_hidden()
            assert page.locator("button[data-action=compare]").first.is_visible()
            t.shot("read-only")
        finally:
            context.close()
