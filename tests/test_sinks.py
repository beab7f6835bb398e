"""Where alert events go: a JSON-lines file (appended, synced), a GeoJSON file (rewritten
whole, atomically) and a webhook (POSTed from a background thread, retried with back-off,
bounded in time and in what it reads of a reply), each reporting what it delivered.

The webhook tests talk to a real HTTP server on 127.0.0.1 (port 0), hostile ones included
(endless chunked replies, a 10 GB Content-Length, redirects); every wait is bounded by short
timeouts passed to the sink, and back-off sleeps are recorded rather than slept.  The outbox
itself (events stored with alerts, kill -9 at delivery) is tested in test_outbox.py."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import tracemalloc
import types
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sitewatch import __version__
from sitewatch.store import Store
from sitewatch.watch import sinks
from sitewatch.watch.alerts import Alert
from sitewatch.watch.pipeline import run_site
from sitewatch.watch.records import StoredAlert
from sitewatch.watch.sinks import (
    GeoJsonSink,
    JsonLinesSink,
    SinkError,
    WebhookSink,
    alert_payload,
    deliver_pending,
    events_of,
)
from test_pipeline import PARAMS, catalogue, test_site


def send(sink, alerts, site=None) -> list[str]:
    """Deliver alerts handed over directly (outside the outbox) to ``sink``."""
    site = site or test_site()
    return sink.deliver(events_of(alerts, site), site)


def stored_alert(aid: str = "a1", part: str = "pad", status: str = "new",
                 reason: str | None = None, text: str | None = None,
                 finding: dict | None = None) -> StoredAlert:
    """An alert as the store returns it: the alert with its lifecycle."""
    a = Alert(aid, "testsite", part, "2024-04-01T02:00:00Z", "changed_excess", "departure",
              "watch", 0.3, 0.0, 5.0, "high", 5,
              f"{part}: unusual change" if text is None else text,
              findings=(finding,) if finding else ())
    return StoredAlert(a, status, PARAMS.hash, reason)


# -- alert_payload --------------------------------------------------------------------------


def test_payload_is_the_record_with_its_lifecycle():
    a = stored_alert(status="dismissed", reason="a test target")
    p = alert_payload(a)
    assert p["id"] == "a1" and p["part"] == "pad" and p["text"] == "pad: unusual change"
    assert p["status"] == "dismissed" and p["status_reason"] == "a test target"
    assert "record" not in p
    assert "status" not in a.alert.to_dict()  # the alert itself has no lifecycle
    assert "status_reason" not in alert_payload(stored_alert())


# -- JSON lines -----------------------------------------------------------------------------


def test_jsonl_appends_one_line_per_alert_and_keeps_what_was_there(tmp_path):
    path = tmp_path / "deep" / "er" / "alerts.jsonl"  # folders are created
    sink = JsonLinesSink(path)
    site = test_site()
    send(sink, {"new": [], "updated": []}, site)
    assert not path.exists()  # nothing to say: no file, no empty line
    send(sink, {"new": [stored_alert("a1"), stored_alert("a2", part="quiet")]}, site)
    send(sink, {"new": [], "updated": [stored_alert("a1", text="Sohae: 발사대 — ok")]}, site)
    sink.close()
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\n\n" not in text
    lines = [json.loads(x) for x in text.splitlines()]
    assert [(x["event"], x["site"], x["alert"]["id"], x["alert"]["part"]) for x in lines] == [
        ("new", "testsite", "a1", "pad"), ("new", "testsite", "a2", "quiet"),
        ("updated", "testsite", "a1", "pad")]
    assert "발사대" in text  # written as UTF-8, not \u escapes
    assert lines[2]["alert"]["text"] == "Sohae: 발사대 — ok"
    # Every line carries an event id; the same alert and event have the same id, another
    # event of the same alert another one.
    ids = [x["event_id"] for x in lines]
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)
    # A second sink on the same file (a later run) appends, never truncates.
    send(JsonLinesSink(path), {"new": [stored_alert("a1")]}, site)
    again = [json.loads(x) for x in path.read_text("utf-8").splitlines()]
    assert [x["alert"]["id"] for x in again] == ["a1", "a2", "a1", "a1"]
    assert again[3]["event_id"] == ids[0]  # the same event, sent again: the same id


def test_jsonl_deliver_reports_what_it_wrote_and_its_key(tmp_path):
    site = test_site()
    path = tmp_path / "sub" / ".." / "alerts.jsonl"
    sink = JsonLinesSink(path)
    assert sink.key == f"jsonl:{(tmp_path / 'alerts.jsonl').resolve()}"  # one key per file
    evs = events_of({"new": [stored_alert("a1"), stored_alert("a2")]}, site)
    assert sink.deliver(evs, site) == [e.id for e in evs]
    assert sink.deliver([], site) == []
    got = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [g["event_id"] for g in got] == [e.id for e in evs]
    assert got[0] == {"event_id": evs[0].id, "event": "new", "site": "testsite",
                      "alert": alert_payload(stored_alert("a1"))}


def test_jsonl_a_line_cut_by_a_crash_stays_apart_from_the_next(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"event_id": "x", "event": "new", "si', encoding="utf-8")  # cut short
    send(JsonLinesSink(path), {"new": [stored_alert("a1")]})
    cut, whole = path.read_text(encoding="utf-8").splitlines()
    assert cut.endswith('"si') and json.loads(whole)["alert"]["id"] == "a1"


def test_jsonl_on_an_unusable_folder_is_a_sink_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SinkError, match="cannot create .*file"):
        JsonLinesSink(blocker / "alerts.jsonl")


def test_jsonl_unwritable_file_is_a_sink_error(tmp_path):
    folder = tmp_path / "alerts.jsonl"
    folder.mkdir()  # a folder where the file should be
    with pytest.raises(SinkError, match=r"cannot write .*alerts\.jsonl"):
        send(JsonLinesSink(folder), {"new": [stored_alert("a1")]})


# -- GeoJSON --------------------------------------------------------------------------------


def test_geojson_lists_every_alert_of_the_site_with_its_part_outline(tmp_path):
    site = test_site()
    everything = [stored_alert("a1", "pad"), stored_alert("a2", "gone"),
                  stored_alert("a3", "quiet", status="seen")]
    asked: list[str] = []

    def all_alerts(site_id: str) -> list[StoredAlert]:
        asked.append(site_id)
        return everything

    path = tmp_path / "out" / "alerts.geojson"
    # Only one alert is new in this run, but the file lists every alert of the site.
    send(GeoJsonSink(path, all_alerts), {"new": [everything[0]]}, site)
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
    send(GeoJsonSink(path, lambda _s: [stored_alert("a1")]), {"new": []})
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
    send(sink, {"new": []})
    before = path.read_bytes()
    # The second write fails after part of the document is written: the file readers see
    # is still the whole first one, not a truncated or half-written one.
    big = [stored_alert(f"a{i}", text="y" * 1000) for i in range(50)]
    broken = [*big, stored_alert("bad", finding={"extra": _FailsWhenWritten()})]
    sink = GeoJsonSink(path, lambda _s: broken)
    with pytest.raises(SinkError, match=r"cannot write .*alerts\.geojson.*No space left"):
        send(sink, {"new": []})
    assert path.read_bytes() == before
    assert [f["id"] for f in json.loads(before)["features"]] == ["a1"]


def test_geojson_failed_write_leaves_no_temporary(tmp_path):
    path = tmp_path / "alerts.geojson"
    sink = GeoJsonSink(path, lambda _s: [stored_alert("bad",
                                                     finding={"extra": _FailsWhenWritten()})])
    with pytest.raises(SinkError):
        send(sink, {"new": []})
    assert list(tmp_path.iterdir()) == []


def test_geojson_on_an_unusable_folder_is_a_sink_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    sink = GeoJsonSink(blocker / "alerts.geojson", lambda _s: [])
    with pytest.raises(SinkError, match=r"cannot write .*file.*alerts\.geojson"):
        send(sink, {"new": []})


# -- webhook against a real HTTP server ------------------------------------------------------

#: What a hostile endpoint sends at most (bytes) before it stops on its own.
FLOOD_CAP = 64 * 1024 * 1024


class Endpoint:
    """A real HTTP server on 127.0.0.1 that answers POSTs from a script (the last entry
    repeats): a status code; ``"hang"`` (holds the request until released); or
    ``(code, "chunked")`` / ``(code, "huge")``, the code with an endless chunked body or a
    10 GB Content-Length, sent until the client hangs up (or FLOOD_CAP bytes).  ``floods``
    records, for each flood, whether the client hung up early and how much was sent."""

    def __init__(self, script: list):
        self.script = list(script)
        self.requests: list[dict] = []
        self.floods: list[tuple[bool, int]] = []
        self.release = threading.Event()
        self.arrived = threading.Event()
        ep = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                n = len(ep.requests)
                ep.requests.append({"path": self.path, "headers": dict(self.headers),
                                    "body": json.loads(raw)})
                ep.arrived.set()
                answer = ep.script[min(n, len(ep.script) - 1)]
                self.close_connection = True
                if answer == "hang":
                    ep.release.wait(10)  # bounded: the test releases it at the end
                    return
                if isinstance(answer, tuple):
                    self.flood(*answer)
                    return
                self.send_response(int(answer))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def flood(self, code: int, how: str) -> None:
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "/elsewhere")
                if how == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(10 * 1024**3))
                self.end_headers()
                block = b"x" * 65536
                piece = b"%x\r\n%s\r\n" % (len(block), block) if how == "chunked" else block
                sent = 0
                try:
                    while sent < FLOOD_CAP:
                        self.wfile.write(piece)
                        sent += len(block)
                except OSError:  # the client hung up
                    ep.floods.append((True, sent))
                    return
                ep.floods.append((False, sent))

            def log_message(self, *a):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client hanging up on a flood is what the tests want

        self.server = Server(("127.0.0.1", 0), Handler)
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
    monkeypatch.setattr(sinks, "time", types.SimpleNamespace(sleep=asked.append,
                                                              monotonic=time.monotonic))
    yield asked


def _hook(url: str, **kw) -> WebhookSink:
    kw = {"retries": 3, "backoff_s": 0.01, "timeout_s": 2.0, "drain_s": 10.0, **kw}
    return WebhookSink(url, **kw)


def _events(*ids: str):
    return events_of({"new": [stored_alert(i) for i in ids]}, test_site())


def test_webhook_posts_each_event_as_json_with_version_id_and_event(sleeps):
    site = test_site()
    new, upd = stored_alert("a1", text="<b>x</b> & \"y\""), stored_alert("a2", status="seen")
    evs = events_of({"new": [new], "updated": [upd]}, site)
    with Endpoint([200]) as ep:
        hook = _hook(ep.url)
        assert hook.key == f"webhook:{ep.url}"
        assert hook.deliver(evs, site) == [e.id for e in evs]
        hook.close()
    assert hook.delivered == 2 and hook.failed == [] and sleeps == []
    assert [r["path"] for r in ep.requests] == ["/hook/sitewatch"] * 2
    for r in ep.requests:
        h = {k.lower(): v for k, v in r["headers"].items()}
        assert h["content-type"] == "application/json"
        assert h["user-agent"] == f"sitewatch/{__version__}"
    assert [r["body"] for r in ep.requests] == [
        {"sitewatch": __version__, "event_id": evs[0].id, "event": "new", "site": "testsite",
         "alert": alert_payload(new)},
        {"sitewatch": __version__, "event_id": evs[1].id, "event": "updated",
         "site": "testsite", "alert": alert_payload(upd)}]
    assert ep.requests[0]["body"]["alert"]["text"] == "<b>x</b> & \"y\""  # data, unescaped


def test_webhook_retries_5xx_and_429_with_exponential_backoff(sleeps):
    with Endpoint([503, 500, 429, 200]) as ep:
        hook = _hook(ep.url, retries=4, backoff_s=0.5)
        evs = _events("a1")
        assert hook.deliver(evs, test_site()) == [evs[0].id]
        hook.close()
    assert hook.delivered == 1 and hook.failed == []
    assert len(ep.requests) == 4
    assert len({json.dumps(r["body"]) for r in ep.requests}) == 1  # the same body each time
    assert sleeps == [0.5, 1.0, 2.0]  # 1, 2, 4 ... times backoff_s, between attempts


def test_webhook_gives_up_after_the_bounded_attempts_and_reports(sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Endpoint([502]) as ep:
        hook = _hook(ep.url, retries=2, backoff_s=0.1)
        assert hook.deliver(_events("a1", "a2"), test_site()) == []
        hook.close()
    assert len(ep.requests) == 6  # 1 + 2 retries for each of the two alerts
    assert hook.delivered == 0
    assert hook.failed == [("a1", "HTTP 502"), ("a2", "HTTP 502")]
    assert sleeps == [0.1, 0.2, 0.1, 0.2]  # no sleep after the last attempt
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # one line per undelivered alert, naming the host and why
    for aid, line in zip(("a1", "a2"), lines, strict=True):
        assert line.startswith(f"{hook.label}: alert {aid} not delivered (HTTP 502)")
        assert "stays pending" in line


def test_webhook_does_not_retry_a_refused_body(sleeps):
    with Endpoint([400, 200]) as ep:
        hook = _hook(ep.url, retries=3)
        assert hook.deliver(_events("a1"), test_site()) == []
        hook.close()
    assert len(ep.requests) == 1 and sleeps == []
    assert hook.delivered == 0 and hook.failed == [("a1", "HTTP 400")]


def test_webhook_server_that_never_answers_times_out(sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Endpoint(["hang"]) as ep:
        hook = _hook(ep.url, retries=1, timeout_s=0.2)
        assert hook.deliver(_events("a1"), test_site()) == []
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
    assert hook.deliver(_events("a1"), test_site()) == []
    hook.close()
    assert sleeps == [0.01] and hook.delivered == 0
    ((aid, why),) = hook.failed
    assert aid == "a1" and "refused" in why.lower()


def test_webhook_deliver_waits_at_most_its_budget_and_reports_the_rest(sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Endpoint(["hang", 200]) as ep:
        hook = _hook(ep.url, retries=0, timeout_s=30.0, drain_s=0.3)
        assert hook.deliver(_events("a1", "a2"), test_site()) == []  # within its budget
        assert not ep.release.is_set() and len(ep.requests) == 1
        assert [aid for aid, _ in hook.failed] == ["a1", "a2"]
        assert "no answer within the 0.3 s delivery budget" in hook.failed[1][1]
        assert caplog.text.count("not delivered") == 2
        ep.release.set()  # the server lets go: the worker drops what is past its budget
        hook.close()
        hook._thread.join(5)
        assert not hook._thread.is_alive()
    assert len(ep.requests) == 1  # a2 was never sent late; it stays pending for next time
    assert caplog.text.count("not delivered") == 2  # and not reported twice


def test_webhook_close_never_waits_on_a_hung_post(sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Endpoint(["hang", 200]) as ep:
        hook = _hook(ep.url, retries=0, timeout_s=30.0, drain_s=0.2)
        # deliver() waits its budget, then leaves the hung event (and the next) pending
        assert send(hook, {"new": [stored_alert("a1"), stored_alert("a2")]}) == []
        assert ep.arrived.wait(5)
        hook.close()  # returns while the first POST is still held by the server
        assert not ep.release.is_set() and hook._thread.is_alive()
        assert hook.delivered == 0 and len(ep.requests) == 1
        assert caplog.text.count("delivery budget") == 2
    assert ep.release.is_set()


# -- hostile endpoints ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["chunked", "huge"])
def test_webhook_reads_a_few_kb_of_an_endless_or_huge_reply(sleeps, how):
    """An endless chunked reply, or one announcing 10 GB: sitewatch reads a few KB, hangs
    up, counts the 2xx as delivered, and goes on with the other alerts."""
    with Endpoint([200, (200, how), 200, (200, how), 200]) as ep:
        hook = _hook(ep.url, retries=0)
        evs = _events("a1", "a2", "a3", "a4", "a5")
        tracemalloc.start()
        try:
            got = hook.deliver(evs, test_site())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        hook.close()
    assert got == [e.id for e in evs]  # every alert delivered, in order
    assert [r["body"]["alert"]["id"] for r in ep.requests] == ["a1", "a2", "a3", "a4", "a5"]
    assert hook.failed == []
    # The server saw the client hang up long before it would have stopped by itself...
    assert len(ep.floods) == 2
    for early, sent in ep.floods:
        assert early and sent < FLOOD_CAP // 4
    # ... and the reply never reached memory (an unbounded read holds >= 64 MB).
    assert peak < 8 * 1024 * 1024


def test_webhook_error_or_redirect_with_an_endless_body_is_not_read(sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Endpoint([(500, "chunked"), (302, "chunked"), (503, "huge"), 200]) as ep:
        hook = _hook(ep.url, retries=0)
        evs = _events("a1", "a2", "a3", "a4")
        assert hook.deliver(evs, test_site()) == [evs[3].id]
        hook.close()
    assert [b for b, _ in ep.floods] == [True, True, True]  # hung up on each
    assert [r["path"] for r in ep.requests] == ["/hook/sitewatch"] * 4  # never redirected
    assert hook.failed == [("a1", "HTTP 500"), ("a2", "HTTP 302 (redirects are not followed)"),
                           ("a3", "HTTP 503")]
    assert caplog.text.count(f"{hook.label}: alert") == 3


def test_webhook_sender_thread_survives_any_error(sleeps, caplog):
    """Whatever goes wrong with one alert (here the opener fails as a huge allocation did),
    the thread logs it and delivers the next ones."""
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    real = urllib.request.build_opener().open
    calls = {"n": 0}

    def opener(req, timeout):
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError("cannot allocate 10737418240 bytes")
        return real(req, timeout=timeout)

    with Endpoint([200]) as ep:
        hook = _hook(ep.url, retries=0, opener=opener)
        evs = _events("a1", "a2")
        assert hook.deliver(evs, test_site()) == [evs[1].id]
        assert hook._thread.is_alive()
        hook.close()
    assert [r["body"]["alert"]["id"] for r in ep.requests] == ["a2"]
    assert hook.failed == [("a1", "MemoryError: cannot allocate 10737418240 bytes")]
    assert f"{hook.label}: alert a1 not delivered (MemoryError" in caplog.text


@pytest.mark.parametrize("url", ["ftp://example.org/x", "example.org/hook", "http:///path",
                                 ""])
def test_webhook_refuses_a_url_that_is_not_http(url):
    with pytest.raises(SinkError, match="webhook URL must be http"):
        WebhookSink(url)


# -- in a run -------------------------------------------------------------------------------


def test_webhook_failures_do_not_break_the_run_and_stay_pending(tmp_path, sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="sitewatch.watch.sinks")
    with Store.open_path(tmp_path / "db" / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs", range(8))
        jl = tmp_path / "alerts.jsonl"
        with Endpoint([500]) as ep:
            hook = _hook(ep.url, retries=1)
            rep = run_site(store, "testsite", PARAMS, sinks=[hook, JsonLinesSink(jl)])
            hook.close()
        (alert,) = rep.alerts["new"]
        assert store.alerts("testsite")[0].id == alert.id
        # The run finished and the other sink got the alert; the webhook's stays pending.
        assert [(d.sink, d.delivered, d.pending, d.first_use) for d in rep.deliveries] == [
            (hook.label, 0, 1, True), (f"jsonl:{jl.resolve()}", 1, 0, True)]
        # Webhook URLs often carry their secret in the path: logs and output show the host.
        assert hook.label.endswith("/…") and ep.url not in caplog.text
        assert rep.to_dict()["deliveries"][0]["pending"] == 1
        assert hook.failed == [(alert.id, "HTTP 500")] and len(ep.requests) == 2
        assert ep.requests[0]["body"]["alert"]["part"] == "pad"
        assert f"alert {alert.id} not delivered" in caplog.text
        # The next delivery to the same URL (the endpoint is back) sends it, once.
        with Endpoint([200]) as ep2:
            hook2 = _hook(ep.url.replace(str(ep.server.server_port),
                                         str(ep2.server.server_port)), retries=0)
            hook2.key = hook.key  # the same endpoint, come back on another port
            (d,) = deliver_pending(store, test_site(), [hook2])
            again = deliver_pending(store, test_site(), [hook2])
            hook2.close()
        assert (d.delivered, d.pending, d.first_use) == (1, 0, False)
        assert again[0].delivered == 0 and len(ep2.requests) == 1
        assert ep2.requests[0]["body"]["event_id"] == ep.requests[0]["body"]["event_id"]
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    assert [x["alert"]["id"] for x in lines] == [alert.id]
    assert lines[0]["event_id"] == ep.requests[0]["body"]["event_id"]
