#!/usr/bin/env python
"""How fast the web view's site page becomes usable, and what each API route costs, on a
site with many dates and parts (issue 16's target: interactive in under 2 s with 100 dates
and 20 parts).

Usage (from the repository root)::

    python benchmarks/bench_watch_speed.py --scenes 100 --size 600 --parts 20 \\
        --workdir /tmp/bench100 --keep --no-profile --out /tmp/ignore.md
    python benchmarks/bench_web_page.py --db /tmp/bench100/sw.db [--loads 6]
        [--out docs/bench_web.md]

The catalogue is copied into a fresh home (the page's writes, if any, stay there), served
by the real app under uvicorn on 127.0.0.1, and the site page is loaded ``--loads`` times
in Debian's chromium driven by Playwright: the first load with an empty tile cache (cold),
the others warm.  "Interactive" is the moment the dates list, the alert markers and the
first imagery tiles are all on the page (the parts and every panel drawn), measured from
navigation start.  Then each API route the page calls is timed 20 times over HTTP.
Results are appended to ``--out`` under the heading "Site page".
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _provenance import REPO, code_state

READY_JS = """() => {
  const dates = document.querySelectorAll('#dates [data-scene]').length;
  const tiles = document.querySelectorAll('#map .leaflet-tile-loaded').length;
  const markers = document.querySelectorAll('#map .alert-marker').length;
  return dates > 0 && tiles > 0 && markers > 0 ? {dates, tiles, markers} : null;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(home: Path, port: int) -> threading.Thread:
    import uvicorn

    from sitewatch.web.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(home), host="127.0.0.1", port=port,
                                           log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.05)
    return t


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="a sitewatch.db with a watched site")
    ap.add_argument("--site", default=None, help="the site (default: the first)")
    ap.add_argument("--loads", type=int, default=6)
    ap.add_argument("--out", default=str(REPO / "docs" / "bench_web.md"))
    args = ap.parse_args()

    import httpx
    from playwright.sync_api import sync_playwright

    from sitewatch.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    home = tmp / "home"
    home.mkdir()
    shutil.copy(args.db, home / "sitewatch.db")
    with Store.open_home(home) as store:
        site_id = args.site or store.list_sites()[0].site.id
        n_scenes = len(store.scenes(site_id))
        n_parts = len(store.get_site(site_id).parts)  # type: ignore[union-attr]
        last = store.last_run(site_id)
        n_alerts = len(store.alerts(site_id, params_hash=last.params_hash)) if last else 0
    port = _free_port()
    _serve(home, port)
    base = f"http://127.0.0.1:{port}"
    loads: list[dict[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM",
                                                                   "/usr/bin/chromium"),
                                    args=["--no-sandbox", "--disable-gpu"])
        for _ in range(args.loads):
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(f"{base}/sites/{site_id}", wait_until="commit")
            page.wait_for_function(READY_JS, timeout=60_000, polling=20)
            ready = time.perf_counter() - t0
            nav = page.evaluate("() => performance.getEntriesByType('navigation')[0]"
                                ".domContentLoadedEventEnd")
            loads.append({"ready_s": ready, "dcl_s": nav / 1000})
            ctx.close()
        browser.close()
    routes = [f"/api/sites/{site_id}", f"/api/sites/{site_id}/scenes",
              f"/api/sites/{site_id}/alerts", f"/api/sites/{site_id}/collateral",
              f"/api/sites/{site_id}/assessment", f"/api/sites/{site_id}/brief", "/api/sites"]
    with httpx.Client(base_url=base) as c:
        scenes = c.get(f"/api/sites/{site_id}/scenes").json()
        alerts = c.get(f"/api/sites/{site_id}/alerts").json()
        if alerts:
            routes.append(f"/api/sites/{site_id}/timeline?part={alerts[-1]['part']}")
            routes.append(f"/api/sites/{site_id}/scenes/{alerts[-1]['after_scene']}/changes")
        routes.append(f"/api/sites/{site_id}/scenes/{scenes[-1]['id']}/tileinfo")
        timings = {}
        for r in routes:
            ts = []
            for _ in range(20):
                t = time.perf_counter()
                resp = c.get(r)
                ts.append(time.perf_counter() - t)
                resp.raise_for_status()
            timings[r] = ts
    cold, warm = loads[0], loads[1:]
    lines = [
        "", "## Site page", "",
        f"`python benchmarks/bench_web_page.py --db {args.db}` at {code_state()}, "
        f"{time.strftime('%Y-%m-%d')}, on {os.cpu_count()} cores ({_cpu()}); Chromium via "
        "Playwright, 1400 x 900 viewport.", "",
        f"Site `{site_id}`: {n_scenes} dates, {n_parts} parts, {n_alerts} alerts.", "",
        "| load | interactive (s) | DOMContentLoaded (s) |", "| --- | ---: | ---: |",
        f"| cold (first tiles build the display cache) | {cold['ready_s']:.2f} | "
        f"{cold['dcl_s']:.2f} |"]
    if warm:
        lines.append(f"| warm, median of {len(warm)} | "
                     f"{statistics.median(x['ready_s'] for x in warm):.2f} | "
                     f"{statistics.median(x['dcl_s'] for x in warm):.2f} |")
        lines.append(f"| warm, worst | {max(x['ready_s'] for x in warm):.2f} | "
                     f"{max(x['dcl_s'] for x in warm):.2f} |")
    lines += ["", "API routes over HTTP (20 calls each, ms):", "",
              "| route | median | p95 |", "| --- | ---: | ---: |"]
    for r, ts in timings.items():
        ts.sort()
        shown = r.replace(site_id, "{site}")
        lines.append(f"| `{shown}` | {1000 * statistics.median(ts):.0f} | "
                     f"{1000 * ts[int(0.95 * (len(ts) - 1))]:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    old = out.read_text() if out.exists() else "# Web view benchmarks\n"
    if "\n## Site page\n" in old:
        old = old.split("\n## Site page\n")[0].rstrip("\n") + "\n"
    out.write_text(old + text)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
