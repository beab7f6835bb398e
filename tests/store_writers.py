"""Writer processes for tests/test_store_server.py: each runs as ``python store_writers.py
ROLE URL ...`` against one catalogue (a SQLite file or a PostgreSQL URL), and the test checks
what they left.  The records are made from ids alone (no rasters), so that many can be
written quickly.

Roles: ``write URL ME N`` (its own site's scenes, results and alerts, plus the same shared
site and alerts as every other writer), ``killed URL K`` (killed with SIGKILL inside the
transaction storing its scene K) and ``hold URL HOME`` (holds the site ``sohae``'s lock,
with the store, until killed).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shapely.geometry import box

from sitewatch.imagery.coregister import Registration, Shift
from sitewatch.imagery.scenes import Scene
from sitewatch.sites.site import Part, Site
from sitewatch.store import Store
from sitewatch.watch.alerts import Alert
from sitewatch.watch.records import Chain, Observation, ProcessedScene, SceneRegistration

PH, GRID = "p1", "optical-10m"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
PARTS = [f"part-{k}" for k in range(5)]


def site(sid: str) -> Site:
    return Site(sid, sid, box(124.0, 39.0, 124.1, 39.1),
                tuple(Part(p, "other", box(124.0 + k / 100, 39.0, 124.005 + k / 100, 39.005))
                      for k, p in enumerate(PARTS)), {"site_type": "facility"})


def scene(sid: str, i: int) -> Scene:
    return Scene(f"s{i:03d}", f"/data/{sid}/s{i:03d}.tif", T0 + timedelta(days=i), "given",
                 "sim-10m", None, (), (), None, 10, 10, None, None, None, (), f"c{i}",
                 site_id=sid)


def result(sid: str, i: int) -> tuple[ProcessedScene, list[Observation]]:
    t = T0 + timedelta(days=i)
    res = ProcessedScene(sid, f"s{i:03d}", PH, GRID, t, "ok", "observed",
                         Chain(f"c{i}", "s000"), {"method": "ratio"}, None, 0.9)
    obs = [Observation(sid, f"s{i:03d}", PH, p, "previous", GRID, t, None, 0.9, 0.1,
                       {"pixels": 100.0}, 1) for p in PARTS]
    return res, obs


def alert(sid: str, aid: str, text: str = "change") -> Alert:
    return Alert(aid, sid, "part-0", "2024-02-01T00:00:00Z", "changed_excess", "departure",
                 "watch", 0.3, 0.0, 5.0, "high", 5, text)


def write(url: str, me: str, n: int) -> None:
    with Store.open_url(url) as store:
        store.put_site(site("shared"), "file")  # every writer stores the same site
        sid = f"site-{me}"
        store.put_site(site(sid), "file")
        for i in range(n):
            store.put_scene(scene(sid, i))
            store.put_result(*result(sid, i))
            store.put_alert(alert(sid, f"{me}{i:015d}"), PH)
            # The same alerts from every writer, each with its own text.
            store.put_alert(alert("shared", f"shared{i:010d}", f"seen by {me}"), PH)
    print("done")


def killed(url: str, kill_at: int) -> None:
    import sitewatch.store.results as results

    def dying(*_args: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with Store.open_url(url) as store:
        store.put_site(site("victim"), "file")
        for i in range(kill_at + 1):
            store.put_scene(scene("victim", i))
        for i in range(kill_at + 1):
            res, obs = result("victim", i)
            if i == kill_at:  # written after the result and observations, in their commit
                reg = Registration(Shift(0.1, 0.1, 0.1), 0.9, 0.1, (), "ok", "agree")
                res = replace(res, registration=SceneRegistration.of(
                    "victim", res.scene_id, GRID, "s000", reg, applied=True))
                results.write_registration = dying  # type: ignore[assignment]
            store.put_result(res, obs)
            print(f"stored {i}", flush=True)


def hold(url: str, home: str) -> None:
    from sitewatch.watch.locks import site_lock

    with Store.open_url(url) as store, site_lock(home, "sohae", purpose="sitewatch run",
                                                 store=store):
        print("held", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    role, target, *rest = sys.argv[1:]
    if role == "write":
        write(target, rest[0], int(rest[1]))
    elif role == "killed":
        killed(target, int(rest[0]))
    else:
        hold(target, rest[0])
