"""The real STAC test services behave like a public catalogue (tests/stac_server.py).

pystac-client and GDAL talk to stac-fastapi-pgstac and the static file server over HTTP on
127.0.0.1; every fault the proxy can inject is observed from the client's side.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import rasterio
from pystac_client import Client
from pystac_client.exceptions import APIError
from rasterio.windows import Window

from conftest import need_shared
from stac_items import colorado_landsat_items, sentinel1_rtc_items, sentinel2_items, truncated_copy

#: A small square near Sohae (lon/lat) and Items on a grid of points around it.
SITE = {"type": "Polygon", "coordinates": [[[124.70, 39.65], [124.72, 39.65], [124.72, 39.67],
                                            [124.70, 39.67], [124.70, 39.65]]]}


def point_item(i: int, lon: float, lat: float, when: datetime, cloud: float = 10.0) -> dict:
    return {"type": "Feature", "stac_version": "1.0.0", "id": f"item-{i:03d}",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "bbox": [lon, lat, lon, lat],
            "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "eo:cloud_cover": cloud, "platform": "test-sat"},
            "assets": {}, "links": []}


def fill(stac, n: int = 30, collection: str = "test") -> list[dict]:
    """n Items inside SITE, one a day from 2024-01-01, cloud cover i %, plus 5 outside it."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    inside = [point_item(i, 124.71, 39.66, start + timedelta(days=i), cloud=float(i))
              for i in range(n)]
    outside = [point_item(100 + i, 10.0, 50.0, start + timedelta(days=i)) for i in range(5)]
    stac.add_collection(collection)
    stac.add_items(collection, inside + outside)
    return inside


def get(url: str, headers: dict | None = None, timeout: float = 10):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                  timeout=timeout)


def test_search_pages_with_intersects_and_datetime(stac):
    fill(stac)
    client = Client.open(stac.api_url)
    search = client.search(collections=["test"], intersects=SITE,
                           datetime="2024-01-03/2024-01-27", limit=100)
    pages = list(search.pages())
    ids = [it.id for page in pages for it in page.items]
    assert len(pages) >= 3  # the server caps pages at stac.api.page_cap (10)
    assert max(len(p.items) for p in pages) <= stac.api.page_cap
    assert sorted(ids) == [f"item-{i:03d}" for i in range(2, 27)]
    posts = [r for r in stac.proxy.requests if r.path == "/search"]
    assert len(posts) == len(pages)  # every page came through the proxy (links point at it)


def test_query_on_cloud_cover_and_page_cap(stac):
    fill(stac)
    stac.api.page_cap = 4
    client = Client.open(stac.api_url)
    items = list(client.search(collections=["test"], query={"eo:cloud_cover": {"lt": 10}},
                               max_items=None).items())
    assert sorted(it.id for it in items) == [f"item-{i:03d}" for i in range(10)]
    assert len([r for r in stac.proxy.requests if r.path == "/search"]) == 3


def test_reset_empties_the_catalogue(stac):
    fill(stac)
    stac.reset()
    assert [c.id for c in Client.open(stac.api_url).get_collections()] == []


def test_server_down_refuses_and_comes_back(stac):
    fill(stac, n=3)
    stac.api.stop()
    with pytest.raises(urllib.error.URLError):
        get(stac.api.url + "/collections")
    with pytest.raises(urllib.error.HTTPError) as e:  # through the proxy: a bad gateway
        get(stac.api_url + "/collections")
    assert e.value.code == 502
    stac.api.start()
    assert len(list(Client.open(stac.api_url).search(collections=["test"]).items())) == 3 + 5


def test_fault_500_then_success(stac):
    fill(stac, n=3)
    rule = stac.proxy.plan.fail(status=500, times=2, match="/search")
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(stac.api_url + "/search?collections=test")
        assert e.value.code == 500
    assert json.load(get(stac.api_url + "/search?collections=test"))["features"]
    assert rule.hits == 2
    assert [r.fault for r in stac.proxy.requests] == ["fail", "fail", None]


def test_fault_429_with_retry_after(stac):
    fill(stac, n=3)
    stac.proxy.plan.throttle(retry_after=3, match="/search")
    with pytest.raises(urllib.error.HTTPError) as e:
        get(stac.api_url + "/search")
    assert e.value.code == 429 and e.value.headers["Retry-After"] == "3"
    # pystac-client surfaces a throttled page as an APIError
    stac.proxy.plan.throttle(retry_after=1, match="/search", times=1)
    with pytest.raises(APIError):
        list(Client.open(stac.api_url).search(collections=["test"]).items())


def test_fault_stall_makes_a_page_time_out(stac):
    fill(stac, n=3)
    stac.proxy.plan.stall(30, match="/search")
    with pytest.raises(TimeoutError):
        get(stac.api_url + "/search", timeout=0.5)
    stac.proxy.plan.clear()  # wakes the stalled request
    assert json.load(get(stac.api_url + "/search"))["features"]


def test_fault_duplicate_item_in_a_page(stac):
    fill(stac, n=3)
    stac.proxy.plan.duplicate_item(match="/search")
    ids = [f["id"] for f in json.load(get(stac.api_url + "/search"))["features"]]
    assert len(ids) == 9 and len(set(ids)) == 8 and ids[0] == ids[1]


def test_fault_drop_closes_without_answer(stac):
    fill(stac, n=1)
    stac.proxy.plan.drop(match="/search")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        get(stac.api_url + "/search")


def write_cog(path, size: int = 1024, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 10000, size=(1, size, size), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="COG", width=size, height=size, count=1,
                       dtype="uint16", crs="EPSG:32651",
                       transform=rasterio.transform.from_origin(640000, 4400000, 10, 10),
                       blocksize=256, compress="deflate") as ds:
        ds.write(data)


def test_ranged_reads_through_vsicurl_read_a_small_part(stac):
    write_cog(stac.files.root / "cogs" / "a.tif")
    size = (stac.files.root / "cogs" / "a.tif").stat().st_size
    env = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif",
           "GDAL_HTTP_MULTIRANGE": "SINGLE", "VSI_CACHE": "FALSE"}
    with rasterio.Env(**env), rasterio.open("/vsicurl/" + stac.asset_href("cogs/a.tif")) as ds:
        block = ds.read(1, window=Window(300, 300, 64, 64))
    with rasterio.open(stac.files.root / "cogs" / "a.tif") as ds:
        assert np.array_equal(block, ds.read(1, window=Window(300, 300, 64, 64)))
    served = stac.files.bytes_served("cogs/a.tif")
    assert 0 < served < size / 4
    assert all(r.range and r.status == 206 for r in stac.files.requests if r.method == "GET")


def test_asset_faults_404_and_truncated(stac):
    write_cog(stac.files.root / "cogs" / "b.tif", size=256)
    full = (stac.files.root / "cogs" / "b.tif").read_bytes()
    stac.proxy.plan.not_found("/files/cogs/b.tif", times=1)
    with pytest.raises(urllib.error.HTTPError) as e:
        get(stac.asset_href("cogs/b.tif"))
    assert e.value.code == 404
    assert get(stac.asset_href("cogs/b.tif")).read() == full
    stac.proxy.plan.truncate("/files/cogs/b.tif", keep_bytes=1000)
    with pytest.raises(http.client.IncompleteRead):
        get(stac.asset_href("cogs/b.tif")).read()
    ranged = get(stac.files.url_for("cogs/b.tif"), headers={"Range": "bytes=10-19"})
    assert ranged.status == 206 and ranged.read() == full[10:20]


# -- Items built from the real imagery (tests/stac_items.py) ---------------------------------

VSICURL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
               "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif", "VSI_CACHE": "FALSE",
               "GDAL_HTTP_MULTIRANGE": "SINGLE"}


def test_colorado_landsat_series_searchable_and_readable(stac):
    data = need_shared("landsat_timeseries_colorado")
    items = colorado_landsat_items(stac.files.root, stac.asset_href, data=data)
    assert len(items) == 105
    stac.add_collection("landsat-c2-l2")
    stac.add_items("landsat-c2-l2", items)
    first = items[0]
    lon, lat = np.mean(first["geometry"]["coordinates"][0][:4], axis=0)
    site = {"type": "Point", "coordinates": [float(lon), float(lat)]}
    search = Client.open(stac.api_url).search(
        collections=["landsat-c2-l2"], intersects=site, datetime="2009-01-01/2010-12-31",
        query={"eo:cloud_cover": {"lte": 50}})
    pages = list(search.pages())
    found = [it for page in pages for it in page.items]
    expect = [it["id"] for it in items if "2009" <= it["properties"]["datetime"][:4] <= "2010"
              and it["properties"]["eo:cloud_cover"] <= 50]
    assert len(pages) >= 3 and sorted(it.id for it in found) == sorted(expect)
    item = found[0]
    # the server serves projection v1.1 (proj:epsg); pystac migrates it to v2 (proj:code)
    raw = json.load(get(f"{stac.api_url}/collections/landsat-c2-l2/items/{item.id}"))
    assert raw["properties"]["proj:epsg"] == 32613
    assert item.properties["proj:code"] == "EPSG:32613"
    assert item.properties["platform"] in ("landsat-5", "landsat-7")
    sid = item.id
    with rasterio.Env(**VSICURL_ENV), rasterio.open("/vsicurl/" + item.assets["red"].href) as ds:
        red = ds.read(1)
        assert ds.crs.to_epsg() == 32613 and ds.nodata == -9999
    with rasterio.open(data / sid / f"{sid}_b3.tif") as src:
        assert np.array_equal(red, src.read(1))
    with rasterio.open(data / sid / f"{sid}_fmask.tif") as src:
        fmask = src.read(1)
    with rasterio.open(stac.files.root / "landsat" / sid / f"{sid}_qa_pixel.tif") as ds:
        qa = ds.read(1)
    assert np.array_equal((qa >> 3) & 1, (fmask == 4).astype(qa.dtype))  # cloud bit
    assert np.array_equal((qa >> 6) & 1, np.isin(fmask, (0, 1)).astype(qa.dtype))  # clear bit


def test_sentinel2_item_assets(stac):
    data = need_shared("s2_l1c_single")
    (item,) = sentinel2_items(stac.files.root, stac.asset_href, data=data)
    assert set(item["assets"]) == {"blue", "green", "red", "nir", "swir16", "swir22", "scl"}
    assert item["assets"]["swir16"]["proj:shape"] == [384, 768]
    stac.add_collection("sentinel-2-l2a")
    stac.add_items("sentinel-2-l2a", [item])
    (found,) = Client.open(stac.api_url).search(collections=["sentinel-2-l2a"]).items()
    with rasterio.Env(**VSICURL_ENV), rasterio.open("/vsicurl/" + found.assets["nir"].href) as ds:
        nir = ds.read(1, window=Window(100, 100, 50, 50))
    with rasterio.open(data / "IMG_DATA" / "T33UUU_20170216T102101_B08.jp2") as src:
        assert np.array_equal(nir, src.read(1, window=Window(100, 100, 50, 50)))


def test_sentinel1_rtc_items_are_deterministic_speckled_power(stac):
    a = sentinel1_rtc_items(stac.files.root, stac.asset_href, seed=3, n_dates=4, size=64,
                            change_after=2)
    b = sentinel1_rtc_items(stac.files.root, stac.asset_href, seed=3, n_dates=4, size=64,
                            change_after=2)
    assert a == b
    assert [it["properties"]["sat:relative_orbit"] for it in a] == [127, 61, 127, 61]
    assert a[0]["properties"]["sar:polarizations"] == ["VV", "VH"]
    stac.add_collection("sentinel-1-rtc")
    stac.add_items("sentinel-1-rtc", a)
    found = list(Client.open(stac.api_url).search(
        collections=["sentinel-1-rtc"], query={"sat:orbit_state": {"eq": "ascending"}}).items())
    assert sorted(it.id for it in found) == sorted(a[i]["id"] for i in (0, 2))
    vv = []
    for it in a:
        with rasterio.open(stac.files.root / it["assets"]["vv"]["href"].split("/files/")[1]) as ds:
            vv.append(ds.read(1))
    assert all(v.dtype == np.float32 and (v > 0).all() for v in vv)
    centre = [10 * np.log10(v[27:37, 27:37].mean()) for v in vv]
    edge = [10 * np.log10(v[:10, :10].mean()) for v in vv]
    assert min(centre[2:]) > max(centre[:2]) + 5  # the new bright structure
    assert max(edge) - min(edge) < 3  # elsewhere only speckle


def test_window_of_a_sentinel2_sized_asset_reads_a_small_fraction(stac, big_s2_asset):
    size = (stac.files.root / big_s2_asset).stat().st_size
    href = "/vsicurl/" + stac.asset_href(big_s2_asset)
    with rasterio.Env(**VSICURL_ENV), rasterio.open(href) as ds:
        assert ds.shape == (10980, 10980) and ds.overviews(1)
        ds.read(1, window=Window(4000, 4000, 600, 600))  # a 6 km site at 10 m
    served = stac.files.bytes_served(big_s2_asset)
    assert 0 < served < 0.03 * size


def test_truncated_cog_on_the_server_opens_but_does_not_read(stac):
    write_cog(stac.files.root / "cogs" / "c.tif", size=512)
    rel = truncated_copy(stac.files.root, "cogs/c.tif", "cogs/c-cut.tif", keep_fraction=0.5)
    with rasterio.Env(**VSICURL_ENV), rasterio.open("/vsicurl/" + stac.asset_href(rel)) as ds:
        assert ds.shape == (512, 512)
        with pytest.raises(rasterio.errors.RasterioIOError):
            ds.read(1)
