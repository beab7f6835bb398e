"""Where alerts go after a run: a JSON-lines file (appended), a GeoJSON file (rewritten whole,
atomically) and a webhook (POSTed from a background thread, retried with back-off, bounded).

The webhook tests talk to a real HTTP server on 127.0.0.1 (port 0); every wait is bounded by
short timeouts passed to the sink, and back-off sleeps are recorded rather than slept."""

from __future__ import annotations

import json
import logging
import socket
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sitewatch import __version__
from sitewatch.store import Store
from sitewatch.watch import sinks
from sitewatch.watch.pipeline import run_site
from sitewatch.watch.sinks import (
    GeoJsonSink,
    JsonLinesSink,
    SinkError,
    WebhookSink,
    alert_payload,
)
from test_pipeline import PARAMS, catalogue, test_site


def stored_alert(aid: str = "a1", part: str = "pad", status: str = "new",
                 reason: str | None = None, **record) -> dict:
    """An alert as the store returns it: lifecycle fields around the record."""
    rec = {"id": aid, "site": "testsite", "part": part, "time": "2024-04-01T02:00:00Z",
           "tier": "watch", "text": f"{part}: unusual change", **record}
    return {"id": aid, "part": part, "status": status, "reason": reason, "record": rec}


# -- alert_payload --------------------------------------------------------------------------


def test_payload_is_the_record_with_its_lifecycle():
    a = stored_alert(status="dismissed", reason="a test target")
    p = alert_payload(a)
    assert p["id"] == "a1" and p["part"] == "pad" and p["text"] == "pad: unusual change"
    assert p["status"] == "dismissed" and p["status_reason"] == "a test target"
    assert "record" not in p
    assert a["record"].get("status") is None  # the stored record is not modified
    assert "status_reason" not in alert_payload(stored_alert())


# -- JSON lines -----------------------------------------------------------------------------


def test_jsonl_appends_one_line_per_alert_and_keeps_what_was_there(tmp_path):
    path = tmp_path / "deep" / "er" / "alerts.jsonl"  # folders are created
    sink = JsonLinesSink(path)
    site = test_site()
    sink.emit({"new": [], "updated": []}, site)
    assert not path.exists()  # nothing to say: no file, no empty line
    sink.emit({"new": [stored_alert("a1"), stored_alert("a2", part="quiet")]}, site)
    sink.emit({"new": [], "updated": [stored_alert("a1", text="Sohae: 발사대 — ok")]}, site)
    sink.close()
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\n\n" not in text
    lines = [json.loads(x) for x in text.splitlines()]
    assert [(x["event"], x["site"], x["alert"]["id"], x["alert"]["part"]) for x in lines] == [
        ("new", "testsite", "a1", "pad"), ("new", "testsite", "a2", "quiet"),
        ("updated", "testsite", "a1", "pad")]
    assert "발사대" in text  # written as UTF-8, not \u escapes
    assert lines[2]["alert"]["text"] == "Sohae: 발사대 — ok"
    # A second sink on the same file (a later run) appends, never truncates.
    JsonLinesSink(path).emit({"new": [stored_alert("a3")]}, site)
    assert [json.loads(x)["alert"]["id"] for x in path.read_text("utf-8").splitlines()] == [
        "a1", "a2", "a1", "a3"]


def test_jsonl_on_an_unusable_folder_is_a_sink_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SinkError, match="cannot create .*file"):
        JsonLinesSink(blocker / "alerts.jsonl")


# -- GeoJSON --------------------------------------------------------------------------------


def test_geojson_lists_every_alert_of_the_site_with_its_part_outline(tmp_path):
    site = test_site()
    everything = [stored_alert("a1", "pad"), stored_alert("a2", "gone"),
                  stored_alert("a3", "quiet", status="seen")]
    asked: list[str] = []

    def all_alerts(site_id: str) -> list[dict]:
        asked.append(site_id)
        return everything

    path = tmp_path / "out" / "alerts.geojson"
    # Only one alert is new in this run, but the file lists every alert of the site.
    GeoJsonSink(path, all_alerts).emit({"new": [everything[0]]}, site)
    assert asked == ["testsite"]
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    feats = {f["id"]: f for f in doc["features"]}
    assert list(feats) == ["a1", "a2", "a3"]
    assert feats["a3"]["properties"]["status"] == "seen"
    pad = feats["a1"]["geometry"]["coordinates"][0]
    quiet = feats["a3"]["geometry"]["coordinates"][0]
    boundary = feats["a2"]["geometry"]["coordinates"][0]  # a part since removed: the site
    assert pad != quiet and pad != boundary
    xs = [x for x, _ in boundary]
    assert min(xs) < min(x for x, _ in pad) and max(x for x, _ in pad) < max(xs)
    for x, y in pad + boundary:
        assert 124 < x < 125.5 and 39 < y < 40.5  # RFC 7946: lon, lat


def test_geojson_replaces_an_existing_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "alerts.geojson"
    old = {"type": "FeatureCollection", "features": [], "padding": "x" * 100_000}
    path.write_text(json.dumps(old), encoding="utf-8")
    GeoJsonSink(path, lambda _s: [stored_alert("a1")]).emit({"new": []}, test_site())
    doc = json.loads(path.read_text(encoding="utf-8"))  # no tail of the longer old file
    assert "padding" not in doc and [f["id"] for f in doc["features"]] == ["a1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.geojson"]


class _FailsWhenWritten:
    """A value that breaks the write half-way: its text cannot be produced (a full disk)."""

    def __str__(self) -> str:
        raise OSError(28, "No space left on device")


def test_geojson_readers_never_see_half_a_file(tmp_path):
    path = tmp_path / "alerts.geojson"
    sink = GeoJsonSink(path, lambda _s: [stored_alert("a1")])
    sink.emit({"new": []}, test_site())
    before = path.read_bytes()
    # The second write fails after part of the document is written: the file readers see
    # is still the whole first one, not a truncated or half-written one.
    big = [stored_alert(f"a{i}", note="y" * 1000) for i in range(50)]
    broken = [*big, stored_alert("bad", extra=_FailsWhenWritten())]
    sink = GeoJsonSink(path, lambda _s: broken)
    with pytest.raises(SinkError, match=r"cannot write .*alerts\.geojson.*No space left"):
        sink.emit({"new": []}, test_site())
    assert path.read_bytes() == before
    assert [f["id"] for f in json.loads(before)["features"]] == ["a1"]


def test_geojson_failed_write_leaves_no_temporary(tmp_path):
    path = tmp_path / "alerts.geojson"
    sink = GeoJsonSink(path, lambda _s: [stored_alert("bad", extra=_FailsWhenWritten())])
    with pytest.raises(SinkError):
        sink.emit({"new": []}, test_site())
    assert list(tmp_path.iterdir()) == []


def test_geojson_on_an_unusable_folder_is_a_sink_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    sink = GeoJsonSink(blocker / "alerts.geojson", lambda _s: [])
    with pytest.raises(SinkError, match=r"cannot write .*file.*alerts\.geojson"):
        sink.emit({"new": []}, test_site())


# -- webhook against a real HTTP server ------------------------------------------------------


class Endpoint:
    """A real HTTP server on 127.0.0.1 that answers POSTs from a script of status codes
    (the last one repeats); ``"hang"`` holds the request until released."""

    def __init__(self, script: list[int | str]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.arrived = threading.Event()
        ep = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                n = len(ep.requests)
                ep.requests.append({"path": self.path, "headers": dict(self.headers),
                                    "body": json.loads(raw)})
                ep.arrived.set()
                answer = ep.script[min(n, len(ep.script) - 1)]
                if answer == "hang":
                    ep.release.wait(10)  # bounded: the test releases it at the end
                    return
                self.send_response(int(answer))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/sitewatch"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Endpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sleeps(monkeypatch) -> Iterator[list[float]]:
    """The back-off waits the webhook asks for, recorded instead of slept."""
    asked: list[float] = []
    monkeypatch.setattr(sinks, "time", types.SimpleNamespace(sleep=asked.append))
    yield asked


def _hook(url: str, **kw) -> WebhookSink:
    kw = {"retries": 3, "backoff_s": 0.01, "timeout_s": 2.0, "drain_s": 10.0, **kw}
    return WebhookSink(url, **kw)


def test_webhook_posts_each_alert_as_json_with_version_and_event(sleeps):
    site = test_site()
    new, upd = stored_alert("a1", text="<b>x</b> & \"y\""), stored_alert("a2", status="seen")
    with Endpoint([200]) as ep:
        hook = _hook(ep.url)
        hook.emit({"new": [new], "updated": [upd]}, site)
        hook.close()
    assert hook.delivered == 2 and hook.failed == [] and sleeps == []
    assert [r["path"] for r in ep.requests] == ["/hook/sitewatch"] * 2
    for r in ep.requests:
        h = {k.lower(): v for k, v in r["headers"].items()}
        assert h["content-type"] == "application/json"
        assert h["user-agent"] == f"sitewatch/{__version__}"
    assert [r["body"] for r in ep.requests] == [
        {"sitewatch": __version__, "event": "new", "site": "testsite",
         "alert": alert_payload(new)},
        {"sitewatch": __version__, "event": "updated", "site": "testsite",
         "alert": alert_payload(upd)}]
    assert ep.requests[0]["body"]["alert"]["text"] == "<b>x</b> & \"y\""  # data, unescaped


def test_webhook_retries_5xx_and_429_with_exponential_backoff(sleeps):
    with Endpoint([503, 500, 429, 200]) as ep:
        hook = _hook(ep.url, retries=4, backoff_s=0.5)
        hook.emit({"new": [stored_alert("a1")]}, test_site())
        hook.close()
    assert hook.delivered == 1 and hook.failed == []
    assert len(ep.requests) == 4
    assert len({json.dumps(r["body"]) for r in ep.requests}) == 1  # the same body each time
    assert sleeps == [0.5, 1.0, 2.0]  # 1, 2, 4 ... times backoff_s, between attempts


def test_webhook_gives_up_after_the_bounded_attempts_and_reports(sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Endpoint([502]) as ep:
        hook = _hook(ep.url, retries=2, backoff_s=0.1)
        hook.emit({"new": [stored_alert("a1"), stored_alert("a2")]}, test_site())
        hook.close()
    assert len(ep.requests) == 6  # 1 + 2 retries for each of the two alerts
    assert hook.delivered == 0
    assert hook.failed == [("a1", "HTTP 502"), ("a2", "HTTP 502")]
    assert sleeps == [0.1, 0.2, 0.1, 0.2]  # no sleep after the last attempt
    assert "alert a1 not delivered (HTTP 502)" in caplog.text
    assert "alert a2 not delivered (HTTP 502)" in caplog.text


def test_webhook_does_not_retry_a_refused_body(sleeps):
    with Endpoint([400, 200]) as ep:
        hook = _hook(ep.url, retries=3)
        hook.emit({"new": [stored_alert("a1")]}, test_site())
        hook.close()
    assert len(ep.requests) == 1 and sleeps == []
    assert hook.delivered == 0 and hook.failed == [("a1", "HTTP 400")]


def test_webhook_server_that_never_answers_times_out(sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Endpoint(["hang"]) as ep:
        hook = _hook(ep.url, retries=1, timeout_s=0.2)
        hook.emit({"new": [stored_alert("a1")]}, test_site())
        hook.close()
        assert not ep.release.is_set()  # gave up on its own, the server never answered
    assert len(ep.requests) == 2 and sleeps == [0.01]
    assert hook.delivered == 0
    ((aid, why),) = hook.failed
    assert aid == "a1" and "timed out" in why
    assert "alert a1 not delivered" in caplog.text


def test_webhook_connection_refused_is_reported_not_raised(sleeps):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = _hook(f"http://127.0.0.1:{port}/x", retries=1)
    hook.emit({"new": [stored_alert("a1")]}, test_site())
    hook.close()
    assert sleeps == [0.01] and hook.delivered == 0
    ((aid, why),) = hook.failed
    assert aid == "a1" and "refused" in why.lower()


def test_webhook_close_waits_a_bounded_time_then_logs_what_is_left(sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Endpoint(["hang", 200]) as ep:
        hook = _hook(ep.url, retries=0, timeout_s=30.0, drain_s=0.2)
        hook.emit({"new": [stored_alert("a1"), stored_alert("a2")]}, test_site())
        assert ep.arrived.wait(5)
        hook.close()  # returns while the first POST is still held by the server
        assert not ep.release.is_set() and hook._thread.is_alive()
        assert hook.delivered == 0 and hook.failed == [] and len(ep.requests) == 1
        assert "gave up waiting" in caplog.text and "still queued" in caplog.text
    assert ep.release.is_set()


def test_webhook_emit_only_queues(sleeps):
    with Endpoint(["hang", 200]) as ep:
        hook = _hook(ep.url, retries=0, timeout_s=30.0, drain_s=5.0)
        hook.emit({"new": [stored_alert("a1")]}, test_site())
        assert ep.arrived.wait(5)
        # The first POST is held by the server; emitting more does not wait on it.
        hook.emit({"new": [stored_alert("a2")], "updated": [stored_alert("a1")]},
                  test_site())
        assert hook._q.qsize() == 2 and len(ep.requests) == 1
        ep.release.set()  # the server lets go (without an answer): the rest is delivered
        hook.close()
    assert [r["body"]["alert"]["id"] for r in ep.requests] == ["a1", "a2", "a1"]
    assert hook.delivered == 2 and [aid for aid, _ in hook.failed] == ["a1"]


@pytest.mark.parametrize("url", ["ftp://example.org/x", "example.org/hook", "http:///path",
                                 ""])
def test_webhook_refuses_a_url_that_is_not_http(url):
    with pytest.raises(SinkError, match="webhook URL must be http"):
        WebhookSink(url)


def test_webhook_failures_do_not_break_the_run(tmp_path, sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Store.open_path(tmp_path / "db" / "sitewatch.db") as store, Endpoint([500]) as ep:
        catalogue(store, tmp_path / "imgs", range(8))
        hook = _hook(ep.url, retries=1)
        jl = tmp_path / "alerts.jsonl"
        rep = run_site(store, "testsite", PARAMS, sinks=[hook, JsonLinesSink(jl)])
        hook.close()
        (alert,) = rep.alerts["new"]
        assert store.alerts("testsite")[0]["id"] == alert["id"]
    # The run finished and the other sink got the alert; the webhook reports its failure.
    assert [json.loads(x)["alert"]["id"] for x in jl.read_text().splitlines()] == [alert["id"]]
    assert hook.failed == [(alert["id"], "HTTP 500")] and len(ep.requests) == 2
    assert ep.requests[0]["body"]["alert"]["part"] == "pad"
    assert f"alert {alert['id']} not delivered" in caplog.text

