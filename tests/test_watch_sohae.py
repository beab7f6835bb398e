"""The issue-15 flow end to end, in commands only, against the real STAC test services
(tests/stac_server.py): place a part of the built-in ``sohae`` site, add a Sentinel-1 RTC
source pointing at the local stac-fastapi-pgstac catalogue, and let ``sitewatch watch --once``
sync, run, assess and deliver.  A new Item then appears in the catalogue and the next cycle
catalogues only it and delivers the alert it causes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyproj import Transformer

pytest.importorskip("stac_server", reason="the real STAC test services are not in this tree")

from conftest import SOHAE_UTM
from sitewatch.store import Store

COLLECTION = "sentinel-1-rtc"


def cli(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SITEWATCH_STAC_RETRIES="1", SITEWATCH_STAC_TIMEOUT="20")
    done = subprocess.run([sys.executable, "-m", "sitewatch.cli.main", "--home", str(home),
                           *args], capture_output=True, text=True, env=env, timeout=600)
    if ok:
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


def test_watch_sohae_from_a_real_stac_catalogue(stac, tmp_path):
    from stac_items import sentinel1_rtc_items

    # 16 dates over two interleaved relative orbits; from date 10 on, a new bright structure
    # stands at the centre of the scene (where the launch pad is placed below).
    # 20 m pixels over the same 4.5 km: a quarter of the pixels of 10 m keeps the suite fast.
    items = sentinel1_rtc_items(stac.files.root, stac.asset_href, seed=11, n_dates=16,
                                size=224, pixel=20.0, change_after=10, collection_tag="e2e")
    stac.add_collection(COLLECTION)
    stac.add_items(COLLECTION, items[:15])
    home, jsonl = tmp_path / "home", tmp_path / "alerts.jsonl"
    lon, lat = Transformer.from_crs(32651, 4326, always_xy=True).transform(*SOHAE_UTM)

    cli(home, "site", "place", "sohae", "launch_pad", "--point", f"{lon:.6f}", f"{lat:.6f}",
        "--radius", "150")
    cli(home, "source", "add", "sohae", "--preset", "s1-rtc", "--stac", stac.api_url,
        "--collection", COLLECTION)
    first = cli(home, "watch", "sohae", "--once", "--jsonl", str(jsonl))
    log = first.stderr
    assert "sohae" in log and "15 added" in log, log
    with Store.open_home(home) as store:
        scenes = store.scenes("sohae")
        assert len(scenes) == 15
        assert {s.properties["relative_orbit"] for s in scenes} == {127, 61}
        assert all(s.properties["stac"]["collection"] == COLLECTION for s in scenes)
        part = store.use_site("sohae").part("launch_pad")
        assert part.geometry is not None
    events = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
    assert any(e.get("part") == "launch_pad" or "launch_pad" in json.dumps(e) for e in events), (
        log, events)

    # A new Item arrives: the next cycle catalogues it alone and runs on.
    before = stac.files.bytes_served()
    stac.add_items(COLLECTION, items[15:])
    second = cli(home, "watch", "sohae", "--once", "--jsonl", str(jsonl))
    assert "1 added, 15 already" in second.stderr, second.stderr
    assert stac.files.bytes_served() > before
    with Store.open_home(home) as store:
        assert len(store.scenes("sohae")) == 16

    # Nothing new: a third cycle reads no pixels at all.
    before = stac.files.bytes_served()
    third = cli(home, "watch", "sohae", "--once")
    assert "0 added, 16 already" in third.stderr, third.stderr
    assert stac.files.bytes_served() == before
