"""The web view's JSON API (sitewatch.web), through FastAPI's test client over a small
watched site, and ``sitewatch serve`` over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")

from fastapi.testclient import TestClient

from sitewatch.store import Store
from sitewatch.watch.pipeline import run_site
from sitewatch.web.app import SECURITY_HEADERS, create_app
from sitewatch.web.auth import load_or_create_token, token_path
from test_pipeline import PARAMS, catalogue

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;{{7*7}}'
BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def watched_home(tmp_path_factory) -> Path:
    """A home whose site was run through the pipeline (alerts, change products)."""
    home = tmp_path_factory.mktemp("web") / "home"
    with Store.open_home(home) as store:
        catalogue(store, home.parent / "imgs", range(10))
        run_site(store, "testsite", PARAMS, products=home / "products")
    return home


@pytest.fixture
def home(watched_home: Path, tmp_path: Path) -> Path:
    """A copy of the watched home for one test (writes stay in it)."""
    import shutil

    h = tmp_path / "home"
    shutil.copytree(watched_home, h)
    return h


@pytest.fixture
def client(home: Path):
    app = create_app(home)
    with TestClient(app, base_url=BASE) as c:
        c.token = load_or_create_token(home)[0]  # type: ignore[attr-defined]
        c.hdr = {"Authorization": f"Bearer {c.token}"}  # type: ignore[attr-defined]
        yield c


def _err(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    assert set(body["error"]) == {"status", "code", "message"}
    return body["error"]["message"]


def _alert(client) -> dict:
    alerts = client.get("/api/sites/testsite/alerts").json()
    pad = [a for a in alerts if a["part"] == "pad"]
    assert pad, alerts
    return pad[0]


# ------------------------------------------------------------------------------ reads


def test_every_read_route_answers_with_the_records_the_page_uses(client):
    assert client.get("/api/health").json()["read_only"] is False
    sites = client.get("/api/sites").json()
    assert [s["id"] for s in sites] == ["testsite"]
    s = sites[0]
    assert s["scenes"] == 10 and s["last_image"]["scene"]
    assert s["open_alerts"] == sum(s["alerts_by_tier"].values()) >= 1
    assert s["assessment"]["launch"]["level"]
    site = client.get("/api/sites/testsite").json()
    names = {f["properties"]["name"] for f in site["parts"]["features"]}
    assert names == {"pad", "quiet"}
    assert all(f["properties"]["version"] == 1 for f in site["parts"]["features"])
    w, so, e, n = site["bbox"]
    assert w < site["center"][0] < e and so < site["center"][1] < n
    scenes = client.get("/api/sites/testsite/scenes").json()
    assert len(scenes) == 10 and [x["time"] for x in scenes] == sorted(x["time"] for x in scenes)
    assert {x["status"] for x in scenes} >= {"first", "ok"}
    cloudy = [x for x in scenes if x["observed"] is not None and x["observed"] < 0.9]
    assert cloudy, "the cloudy date's observed share is reported"
    assert scenes[0]["tiles"].endswith("/{z}/{x}/{y}.png")


def test_alerts_carry_a_map_position_inside_their_part(client):
    from shapely.geometry import Point, shape

    site = client.get("/api/sites/testsite").json()
    pad = next(shape(f["geometry"]) for f in site["parts"]["features"]
               if f["properties"]["name"] == "pad")
    a = _alert(client)
    assert pad.contains(Point(a["position"]))
    assert a["label"] and a["before_scene"] and a["after_scene"]


def test_the_timeline_shows_the_alert_at_its_date_and_value(client):
    a = _alert(client)
    tl = client.get("/api/sites/testsite/timeline", params={"part": "pad"}).json()
    assert tl["part"] == "pad" and tl["series"]
    marks = [m for s in tl["series"] for m in s["alerts"]]
    assert a["id"] in {m["id"] for m in marks}
    m = next(m for m in marks if m["id"] == a["id"])
    s = next(s for s in tl["series"] if m in s["alerts"])
    pt = next(p for p in s["points"] if p["time"][:10] == m["time"][:10])
    assert m["value"] == pt["value"] is not None
    assert s["band"] is None or m["value"] > s["band"][1], "the alert lies outside the band"
    assert any(not p["observed"] for p in s["points"]), "the cloudy date is unobserved"
    _err(client.get("/api/sites/testsite/timeline", params={"part": "nope"}), 404)
    _err(client.get("/api/sites/testsite/timeline"), 422)


def test_change_objects_are_geojson_in_lon_lat_at_the_alerted_part(client):
    from shapely.geometry import shape

    a = _alert(client)
    fc = client.get(f"/api/sites/testsite/scenes/{a['after_scene']}/changes").json()
    assert fc["type"] == "FeatureCollection" and fc["features"]
    site = client.get("/api/sites/testsite").json()
    pad = next(shape(f["geometry"]) for f in site["parts"]["features"]
               if f["properties"]["name"] == "pad")
    assert any(shape(f["geometry"]).intersects(pad) for f in fc["features"])
    assert all(f["properties"]["area_m2"] > 0 for f in fc["features"])
    first = client.get("/api/sites/testsite/scenes").json()[0]["id"]
    assert client.get(f"/api/sites/testsite/scenes/{first}/changes").json()["features"] == []


def test_assessment_collateral_brief_and_history_reads(client):
    a = client.get("/api/sites/testsite/assessment").json()
    assert a["as_of_default"] is True and len(a["summary"]) == 2
    a2 = client.get("/api/sites/testsite/assessment", params={"at": "2024-03-01"}).json()
    assert a2["at"] == "2024-03-01"
    _err(client.get("/api/sites/testsite/assessment", params={"at": "yesterday"}), 422)
    assert client.get("/api/sites/testsite/collateral").json() == {"reports": [], "notes": []}
    assert client.get("/api/sites/testsite/brief").json() == {"url": None, "written": None}
    hist = client.get("/api/sites/testsite/parts/history", params={"part": "pad"}).json()
    assert [v["version"] for v in hist] == [1]


def test_bad_ids_get_404_in_the_one_error_shape(client):
    assert "nope" in _err(client.get("/api/sites/nope"), 404)
    for path in ("/api/sites/nope/scenes", "/api/sites/nope/alerts",
                 "/api/sites/testsite/scenes/NOPE/changes", "/api/sites/nope/collateral",
                 "/api/no/such/route", "/briefs/testsite/brief.html",
                 "/briefs/testsite/../../sitewatch.db"):
        _err(client.get(path), 404)
    assert "status" in _err(client.get("/api/sites/testsite/alerts",
                                       params={"status": "bogus"}), 400)
    _err(client.delete("/api/sites/testsite"), 405)


def test_openapi_documents_every_api_route(client):
    spec = client.get("/api/openapi.json").json()
    paths = set(spec["paths"])
    from sitewatch.web.api import router

    api_paths = {r.path for r in router.routes if r.path.startswith("/api/")}
    assert api_paths <= paths
    assert client.get("/docs").status_code == 404  # no CDN-loaded docs page


# ------------------------------------------------------------------------------ security


def test_every_answer_has_the_security_headers(client):
    for r in (client.get("/api/sites"), client.get("/api/sites/nope"),
              client.post("/api/sites/testsite/notes", json={})):
        for k, v in SECURITY_HEADERS.items():
            assert r.headers[k] == v
    assert "'unsafe-inline'" not in SECURITY_HEADERS["content-security-policy"].split(
        "script-src")[1].split(";")[0]


def test_a_foreign_host_header_is_refused(home):
    with TestClient(create_app(home), base_url="http://evil.example:8000") as c:
        assert "evil.example" in _err(c.get("/api/sites"), 421)
    with TestClient(create_app(home, allowed_hosts=["*"]),
                    base_url="http://any.example") as c:
        assert c.get("/api/sites").status_code == 200


def test_writes_need_the_token(client):
    a = _alert(client)
    url = f"/api/sites/testsite/alerts/{a['id']}"
    assert "token" in _err(client.post(url, json={"action": "seen"}), 401)
    assert client.post(url, json={"action": "seen"},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post(url, json={"action": "seen"},
                       headers={"Authorization": f"Basic {client.token}"}).status_code == 401
    for path, body in (("/api/sites/testsite/notes", {"text": "x", "when": "2024-01-01"}),
                       ("/api/sites/testsite/reports", {"text": "x"}),
                       ("/api/sites/testsite/brief", None)):
        _err(client.post(path, json=body), 401)
    _err(client.put("/api/sites/testsite/parts", json={"parts": []}), 401)
    assert client.get("/api/sites/testsite/alerts").json()[0]["status"] == "new"
    r = client.post(url, json={"action": "seen"}, headers=client.hdr)
    assert r.status_code == 200 and r.json()["status"] == "seen"


def test_a_write_from_another_origin_is_refused_even_with_the_token(client):
    a = _alert(client)
    r = client.post(f"/api/sites/testsite/alerts/{a['id']}", json={"action": "seen"},
                    headers={**client.hdr, "Origin": "http://evil.example"})
    assert "origin" in _err(r, 403)
    r = client.post(f"/api/sites/testsite/alerts/{a['id']}", json={"action": "seen"},
                    headers={**client.hdr, "Origin": BASE})
    assert r.status_code == 200


def test_read_only_server_refuses_every_write(home):
    with TestClient(create_app(home, read_only=True), base_url=BASE) as c:
        assert c.get("/api/health").json()["read_only"] is True
        a = _alert(c)
        token = load_or_create_token(home)[0]
        r = c.post(f"/api/sites/testsite/alerts/{a['id']}", json={"action": "seen"},
                   headers={"Authorization": f"Bearer {token}"})
        assert "read-only" in _err(r, 403)


def test_request_bodies_are_limited(client):
    big = "x" * (3 * 1024 * 1024)
    r = client.post("/api/sites/testsite/reports", content=json.dumps({"text": big}),
                    headers={**client.hdr, "content-type": "application/json"})
    _err(r, 413)

    def chunks():
        for _ in range(40):
            yield b"x" * 100_000

    r = client.post("/api/sites/testsite/reports", content=chunks(),
                    headers={**client.hdr, "content-type": "application/json"})
    _err(r, 413)
    _err(client.post("/api/sites/testsite/notes", json={"text": "x" * 20_001,
                                                         "when": "2024-01-01"},
                     headers=client.hdr), 422)


def test_unknown_fields_and_bad_json_are_422(client):
    _err(client.post("/api/sites/testsite/notes", content=b"{not json",
                     headers={**client.hdr, "content-type": "application/json"}), 422)
    _err(client.post("/api/sites/testsite/notes",
                     json={"text": "x", "when": "2024-01-01", "admin": True},
                     headers=client.hdr), 422)


def test_the_token_file_is_private_and_made_once(tmp_path):
    h = tmp_path / "h"
    t1, made1 = load_or_create_token(h)
    t2, made2 = load_or_create_token(h)
    assert made1 and not made2 and t1 == t2 and len(t1) >= 40
    assert stat.S_IMODE(token_path(h).stat().st_mode) == 0o600
    os.chmod(token_path(h), 0o644)
    from sitewatch.errors import OutputError

    with pytest.raises(OutputError, match="chmod 600"):
        load_or_create_token(h)


# ------------------------------------------------------------------------------ writes


def test_alert_lifecycle_through_the_api(client, home):
    a = _alert(client)
    url = f"/api/sites/testsite/alerts/{a['id']}"
    assert "reason" in _err(client.post(url, json={"action": "dismiss"}, headers=client.hdr),
                            422)
    r = client.post(url, json={"action": "dismiss", "reason": "a cloud edge"},
                    headers=client.hdr).json()
    assert r["status"] == "dismissed" and r["status_reason"] == "a cloud edge"
    with Store.open_home(home) as store:
        assert store.get_alert(a["id"]).status == "dismissed"
    assert client.post(url, json={"action": "confirm", "reason": "seen on the ground"},
                       headers=client.hdr).json()["status"] == "confirmed"
    assert client.post(url, json={"action": "reopen"},
                       headers=client.hdr).json()["status"] == "new"
    _err(client.post(url, json={"action": "delete"}, headers=client.hdr), 422)
    _err(client.post("/api/sites/testsite/alerts/0000000000000000", json={"action": "seen"},
                     headers=client.hdr), 404)


def test_concurrent_alert_updates_all_land_and_end_consistent(client, home):
    a = _alert(client)
    url = f"/api/sites/testsite/alerts/{a['id']}"
    actions = [("seen", None), ("confirm", "x"), ("dismiss", "y"), ("reopen", None)] * 5
    codes: list[int] = []

    def post(action: str, reason: str | None) -> None:
        r = client.post(url, json={"action": action, "reason": reason}, headers=client.hdr)
        codes.append(r.status_code)

    threads = [threading.Thread(target=post, args=x) for x in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * len(actions)
    final = client.get("/api/sites/testsite/alerts").json()
    mine = next(x for x in final if x["id"] == a["id"])
    assert mine["status"] in ("new", "seen", "confirmed", "dismissed")
    with Store.open_home(home) as store:
        assert store.get_alert(a["id"]).status == mine["status"]
        assert len(store.alerts("testsite")) == len(final)


def test_hostile_strings_come_back_as_data_never_as_markup(client):
    r = client.post("/api/sites/testsite/notes",
                    json={"text": f"vehicles at the pad {HOSTILE}", "when": "2024-03-01",
                          "part": "pad", "author": HOSTILE}, headers=client.hdr)
    assert r.status_code == 201, r.text
    r = client.post("/api/sites/testsite/reports",
                    json={"text": f"Trucks arrived at the launch pad. {HOSTILE}",
                          "title": HOSTILE, "published": "2024-03-02"}, headers=client.hdr)
    assert r.status_code == 201, r.text
    col = client.get("/api/sites/testsite/collateral")
    assert col.headers["content-type"] == "application/json"
    body = col.json()
    assert body["notes"][0]["text"].endswith(HOSTILE) and body["notes"][0]["author"] == HOSTILE
    assert body["reports"][0]["published"] == "2024-03-02"
    assert "/" not in body["reports"][0]["name"], "a report's file is named, not its path"
    _err(client.post("/api/sites/testsite/notes", json={"text": "x", "when": "2024-01-01",
                                                        "part": HOSTILE},
                     headers=client.hdr), 422)


def test_saving_a_layout_makes_new_part_versions(client, home):
    site = client.get("/api/sites/testsite").json()
    feats = {f["properties"]["name"]: f for f in site["parts"]["features"]}
    pad = feats["pad"]["geometry"]
    moved = {"type": "Polygon", "coordinates": [[[x + 0.0001, y] for x, y in
                                                 pad["coordinates"][0]]]}
    body = {"parts": [{"name": "pad", "kind": "launch_pad", "geometry": moved, "was": "pad"},
                      {"name": "quiet_area", "kind": "support_area",
                       "geometry": feats["quiet"]["geometry"], "was": "quiet"},
                      {"name": "new_shed", "kind": "storage_area", "geometry": None}],
            "note": "checked on imagery"}
    r = client.put("/api/sites/testsite/parts", json=body, headers=client.hdr)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["result"] == "updated" and out["renamed"] == {"quiet": "quiet_area"}
    assert {u["name"] for u in out["site"]["unplaced"]} == {"new_shed"}
    with Store.open_home(home) as store:
        vs = store.part_versions("testsite", "pad")
        assert [v.version for v in vs] == [1, 2] and vs[-1].note == "checked on imagery"
        assert vs[-1].author == "web view"
        assert [v.version for v in store.part_versions("testsite", "quiet_area")] == [1]
        assert {p.name for p in store.get_site("testsite").parts} == {"pad", "quiet_area",
                                                                     "new_shed"}
    tl = client.get("/api/sites/testsite/timeline", params={"part": "pad"}).json()
    assert tl["series"] == [] and "version 2" in tl["note"] and "sitewatch run" in tl["note"]
    # The same body again names a part that is gone (a stale page): refused, naming it.
    assert "'quiet'" in _err(client.put("/api/sites/testsite/parts", json=body,
                                        headers=client.hdr), 422)
    now = client.get("/api/sites/testsite").json()
    same = {"parts": [{"name": f["properties"]["name"], "kind": f["properties"]["kind"],
                       "geometry": f["geometry"], "was": f["properties"]["name"]}
                      for f in now["parts"]["features"]]
            + [{"name": "new_shed", "kind": "storage_area", "was": "new_shed"}]}
    assert client.put("/api/sites/testsite/parts", json=same,
                      headers=client.hdr).json()["result"] == "unchanged"


def test_a_refused_layout_changes_nothing(client, home):
    with Store.open_home(home) as store:
        before = store.get_site("testsite").dumps()
    far = {"type": "Polygon", "coordinates": [[[0, 0], [0, 0.01], [0.01, 0.01], [0, 0]]]}
    bad = [
        ({"parts": [{"name": "pad", "kind": "launch_pad", "geometry": far, "was": "pad"}]},
         "outside"),
        ({"parts": [{"name": "pad", "kind": "spaceship", "geometry": None, "was": "pad"}]},
         "kind"),
        ({"parts": [{"name": "a", "kind": "launch_pad"}, {"name": "a", "kind": "launch_pad"}]},
         "two parts"),
        ({"parts": [{"name": "x", "kind": "launch_pad", "was": "ghost"}]}, "ghost"),
        ({"parts": [{"name": HOSTILE, "kind": "launch_pad"}]}, ""),
        ({"parts": [{"name": "p", "kind": "launch_pad",
                     "geometry": {"type": "Point", "coordinates": [1, 2]}}]}, ""),
    ]
    for body, word in bad:
        msg = _err(client.put("/api/sites/testsite/parts", json=body, headers=client.hdr),
                   422)
        assert word in msg
    with Store.open_home(home) as store:
        assert store.get_site("testsite").dumps() == before


def test_writing_a_brief_and_serving_its_files(client):
    r = client.post("/api/sites/testsite/brief", headers=client.hdr)
    assert r.status_code == 200, r.text
    url = r.json()["url"]
    assert url == "/briefs/testsite/brief.html"
    page = client.get(url)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert client.get("/api/sites/testsite/brief").json()["url"] == url


# ------------------------------------------------------------------------------ serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_over_real_http_and_prints_the_token_once(home):
    import httpx

    token_path(home).unlink(missing_ok=True)
    port = _free_port()
    env = {**os.environ, "SITEWATCH_HOME": str(home)}
    cmd = [sys.executable, "-m", "sitewatch.cli.main", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "serve did not start in 30 s"
                time.sleep(0.2)
        assert r.json()["read_only"] is False
        token = token_path(home).read_text().strip()
        ok = httpx.post(f"http://127.0.0.1:{port}/api/sites/testsite/notes",
                        json={"text": "a note", "when": "2024-01-02"},
                        headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 201, ok.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert token in out and f"http://127.0.0.1:{port}/" in out
    proc2 = subprocess.run([*cmd, "--help"], env=env, capture_output=True, text=True)
    assert "--read-only" in proc2.stdout


def test_an_undated_report_is_refused_and_nothing_is_kept(client, home):
    r = client.post("/api/sites/testsite/reports",
                    json={"text": "Trucks arrived at the launch pad, officials said."},
                    headers=client.hdr)
    assert "publication date" in _err(r, 422)
    assert client.get("/api/sites/testsite/collateral").json()["reports"] == []
    assert not list((home / "collateral").rglob("*.txt"))
    r = client.post("/api/sites/testsite/reports",
                    json={"text": "Trucks arrived at the launch pad, officials said.",
                          "url": "https://example.org/2024/03/05/trucks-at-the-pad"},
                    headers=client.hdr)
    assert r.status_code == 201, r.text
    assert r.json()["published"].startswith("2024-03")
