"""A real HTTP proxy on 127.0.0.1 that injects faults in front of the STAC API and file server.

Paths under ``/files/`` go to the static file server (``/files/a/b.tif`` -> ``/a/b.tif``);
every other path goes to the STAC API.  The ``Host`` header is passed through, so the API's
own links (``self``, ``next``) point back at the proxy, as they would behind a real gateway.

The plan is a list of rules, consulted in order for each request; the first rule whose
``match`` (a substring of the path with its query) and ``method`` fit, and that has uses left,
applies.  Examples::

    proxy.plan.fail(status=500, times=2, match="/search")
    proxy.plan.throttle(retry_after=1, times=1)          # 429 + Retry-After: 1
    proxy.plan.stall(seconds=5, match="/search")        # the answer comes 5 s late
    proxy.plan.duplicate_item(match="/search")          # a page lists its first Item twice
    proxy.plan.not_found(match="/files/s2/red.tif")
    proxy.plan.truncate(match="/files/s2/red.tif", keep_bytes=1000)
    proxy.plan.drop(match="/search")                     # close the socket, no answer
    proxy.plan.clear()
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["FaultPlan", "FaultProxy", "ProxyRecord", "Rule"]

FILES_PREFIX = "/files"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "accept-encoding", "content-length"}

#: Set by the proxy itself (send_response, the body it sends).
DROP_FROM_UPSTREAM = HOP_BY_HOP | {"date", "server"}


@dataclass
class Rule:
    """One fault: what it does, to which requests, how many more times (None: always)."""

    kind: str  # fail | stall | duplicate | truncate | drop
    match: str = ""
    method: str | None = None
    times: int | None = 1
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    keep_bytes: int = 0
    hits: int = 0

    def fits(self, method: str, path: str) -> bool:
        return ((self.times is None or self.hits < self.times) and self.match in path
                and (self.method is None or self.method == method))


@dataclass(frozen=True)
class ProxyRecord:
    """One request the proxy answered: the fault applied (or None) and the status sent."""

    method: str
    path: str
    status: int | None
    fault: str | None


@dataclass
class FaultPlan:
    """The proxy's rules; thread-safe.  Every method returns the Rule (``rule.hits`` counts)."""

    rules: list[Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail(self, status: int = 500, *, times: int | None = 1, match: str = "",
             method: str | None = None, retry_after: float | None = None) -> Rule:
        """Answer ``status`` (with a small JSON body) instead of forwarding."""
        return self._add(Rule("fail", match, method, times, status=status,
                              retry_after=retry_after))

    def throttle(self, retry_after: float = 1, *, times: int | None = 1, match: str = "",
                 method: str | None = None) -> Rule:
        """429 Too Many Requests with ``Retry-After: retry_after`` (seconds)."""
        return self.fail(429, times=times, match=match, method=method, retry_after=retry_after)

    def not_found(self, match: str, *, times: int | None = None) -> Rule:
        """404 for matching paths (a missing asset)."""
        return self.fail(404, times=times, match=match)

    def stall(self, seconds: float, *, match: str = "", times: int | None = 1,
              method: str | None = None) -> Rule:
        """Wait ``seconds`` before forwarding (a page that times out); ``clear()`` wakes it."""
        return self._add(Rule("stall", match, method, times, seconds=seconds))

    def duplicate_item(self, *, match: str = "/search", times: int | None = 1) -> Rule:
        """In a JSON FeatureCollection answer, list the first Item twice in the page."""
        return self._add(Rule("duplicate", match, None, times))

    def truncate(self, match: str, *, keep_bytes: int = 0, times: int | None = None) -> Rule:
        """Send the full Content-Length header but only ``keep_bytes`` of the body, then close."""
        return self._add(Rule("truncate", match, None, times, keep_bytes=keep_bytes))

    def drop(self, *, match: str = "", times: int | None = 1, method: str | None = None) -> Rule:
        """Close the connection without answering."""
        return self._add(Rule("drop", match, method, times))

    def clear(self) -> None:
        """Remove every rule and wake stalled requests (they then forward)."""
        with self._lock:
            self.rules.clear()
            self._wake.set()
            self._wake = threading.Event()

    def take(self, method: str, path: str) -> tuple[Rule | None, threading.Event]:
        with self._lock:
            for rule in self.rules:
                if rule.fits(method, path):
                    rule.hits += 1
                    return rule, self._wake
            return None, self._wake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _record(self, status: int | None, fault: str | None) -> None:
        self.server.owner._log(ProxyRecord(self.command, self.path, status, fault))

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rule, wake = self.server.owner.plan.take(self.command, self.path)
        kind = rule.kind if rule else None
        if rule and rule.kind == "drop":
            self._record(None, "drop")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if rule and rule.kind == "fail":
            payload = json.dumps({"code": "InjectedFault", "description":
                                  f"fault proxy: {rule.status}"}).encode()
            self._record(rule.status, "fail")  # logged before the client can see it
            self.send_response(rule.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if rule.retry_after is not None:
                self.send_header("Retry-After", f"{rule.retry_after:g}")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        if rule and rule.kind == "stall":
            wake.wait(rule.seconds)
        try:
            status, headers, data = self._forward(body)
            upstream_length = next((v for k, v in headers if k.lower() == "content-length"),
                                   "0")
            headers = [(k, v) for k, v in headers if k.lower() not in DROP_FROM_UPSTREAM]
        except OSError:
            self._record(502, kind)
            self.send_error(502, "upstream unreachable")
            return
        if rule and rule.kind == "duplicate":
            data = _duplicate_first(data)
        self._record(status, kind)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        # HEAD has no body: pass the upstream's length on
        self.send_header("Content-Length",
                         upstream_length if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            if rule and rule.kind == "truncate":
                self.wfile.write(data[: rule.keep_bytes])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self.wfile.write(data)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        owner = self.server.owner
        path = self.path
        if path == FILES_PREFIX or path.startswith(FILES_PREFIX + "/"):
            upstream, path = owner.files_upstream, path[len(FILES_PREFIX):] or "/"
        else:
            upstream = owner.api_upstream
        parts = urlsplit(upstream)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Accept-Encoding"] = "identity"
            if body:
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in HOP_BY_HOP or k.lower() == "content-length"]
            return resp.status, out, data
        finally:
            conn.close()


def _duplicate_first(data: bytes) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    feats = doc.get("features") if isinstance(doc, dict) else None
    if not feats:
        return data
    feats.insert(1, feats[0])
    return json.dumps(doc).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultProxy


class FaultProxy:
    """The proxy: ``url`` is the STAC API root through it; ``file_url_for(rel)`` an asset."""

    def __init__(self, api_upstream: str, files_upstream: str) -> None:
        self.api_upstream = api_upstream.rstrip("/")
        self.files_upstream = files_upstream.rstrip("/")
        self.plan = FaultPlan()
        self._records: list[ProxyRecord] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fault-proxy", daemon=True)
        self._thread.start()

    def file_url_for(self, rel: str) -> str:
        return f"{self.url}{FILES_PREFIX}/{rel.lstrip('/')}"

    def _log(self, record: ProxyRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def requests(self) -> list[ProxyRecord]:
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        """Clear the plan and the request log."""
        self.plan.clear()
        with self._lock:
            self._records.clear()

    def close(self) -> None:
        self.plan.clear()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
