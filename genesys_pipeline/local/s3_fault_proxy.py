"""A fault-injecting HTTP proxy, for tests: S3 faults in front of moto's server, and a place to stop a run.

A client pointed at the proxy (e.g. `S3Resource(endpoint_url=proxy.base_url)`) has every request
forwarded to one upstream server and the answer sent back, except that

- a share of the requests (`fault_rate`) fails as a real S3 endpoint sometimes fails: an HTTP 500
  `InternalError` or 503 `SlowDown` without forwarding, a connection reset without forwarding, or
  (`lost_response`) the request forwarded and done upstream, then the connection reset, so the client
  cannot know it went through;
- a request that matches a `hold` waits at the proxy until the test releases it (forwarded) or drops it
  (never forwarded, the connection reset). A test holds, say, the first `COPY INTO` a run sends to the
  Snowflake stand-in, then kills the run there: a precise stage marker without touching the pipeline.

Nothing here is S3-specific except the error bodies, so the same proxy also sits in front of the
Snowflake stand-in or the Genesys emulator (both plain HTTP/1.1). Dev tooling: never imported by the
production code location.

    with FaultProxy(stack.s3_endpoint_url, fault_rate=0.3) as proxy:
        s3 = stand_ins.s3_resource(proxy.base_url)
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import http.client
import random
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

FAULT_KINDS = ("500", "503", "reset", "lost_response")
# Headers that belong to one connection, not to the request: never forwarded either way.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "expect"}  # fmt: skip
S3_ERRORS = {
    500: b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code><Message>We encountered an "
         b"internal error. Please try again.</Message></Error>",
    503: b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code><Message>Please reduce your "
         b"request rate.</Message></Error>",
}  # fmt: skip


@dataclasses.dataclass
class ProxiedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: bytes

    def text(self) -> str:
        """The body as text, gunzipped if the client compressed it (the Snowflake connector does)."""
        body = self.body
        if self.headers.get("content-encoding", "").lower() == "gzip" or body[:2] == b"\x1f\x8b":
            try:
                body = gzip.decompress(body)
            except OSError:
                pass
        return body.decode("utf-8", errors="replace")


class Hold:
    """The first request matching `predicate` from now on (`pause`: it waits at the proxy until
    `release()` or `drop()`; else it goes on at once and `reached` only tells that it passed)."""

    def __init__(self, predicate: Callable[[ProxiedRequest], bool], pause: bool) -> None:
        self.predicate = predicate
        self.pause = pause
        self.reached = threading.Event()
        self.request: Optional[ProxiedRequest] = None
        self._decided = threading.Event()
        self._forward = True

    def wait(self, timeout: float) -> bool:
        return self.reached.wait(timeout)

    def release(self) -> None:
        """Forward the held request (and any that matches later)."""
        self._forward = True
        self._decided.set()

    def drop(self) -> None:
        """Never forward the held request: reset its connection, as if the client had died first."""
        self._forward = False
        self._decided.set()

    def _take(self, request: ProxiedRequest) -> bool:
        """Called for the matching request; True if it is to be forwarded."""
        self.request = request
        self.reached.set()
        if self.pause:
            self._decided.wait()
        return self._forward


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer
    _upstream: Optional[http.client.HTTPConnection] = None

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _proxy(self) -> None:
        request = ProxiedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                 self._read_body())  # fmt: skip
        proxy = self.server.proxy
        proxy.stats.add("requests")
        if not proxy._passes_holds(request):
            proxy.stats.add("dropped")
            return self._reset()
        fault = proxy._draw_fault()
        if fault in ("500", "503"):
            proxy.stats.add(f"faults.{fault}")
            return self._answer(int(fault), {"Content-Type": "application/xml"}, S3_ERRORS[int(fault)])
        if fault == "reset":
            proxy.stats.add("faults.reset")
            return self._reset()
        try:
            status, headers, body = self._forward(request)
        except (OSError, http.client.HTTPException):
            proxy.stats.add("upstream_errors")
            return self._reset()
        if fault == "lost_response":
            proxy.stats.add("faults.lost_response")
            return self._reset()
        self._answer(status, headers, body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, request: ProxiedRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
            if self._upstream is None:
                url = self.server.proxy.upstream
                self._upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
            try:
                self._upstream.putrequest(request.method, request.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self._upstream.putheader(name, value)
                if request.body or request.method in ("POST", "PUT", "PATCH"):
                    self._upstream.putheader("Content-Length", str(len(request.body)))
                self._upstream.endheaders(request.body or None)
                response = self._upstream.getresponse()
                body = response.read()
                return response.status, response.getheaders(), body
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _answer(self, status: int, headers: Any, body: bytes) -> None:
        items = headers.items() if isinstance(headers, dict) else headers
        self.send_response(status)
        upstream_length = None
        for name, value in items:
            if name.lower() == "content-length":
                upstream_length = value
            elif name.lower() not in HOP_BY_HOP and name.lower() not in ("date", "server"):
                self.send_header(name, value)
        # A HEAD answer has no body but the length of the body a GET would get (head_object reads it).
        self.send_header("Content-Length", upstream_length if self.command == "HEAD" and upstream_length
                         else str(len(body)))  # fmt: skip
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout: close() sends a TCP RST, the client sees "connection reset".
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # one line per request would drown a test's output
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request (a killed run) is expected here


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def add(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))


class FaultProxy:
    """The proxy, in a daemon thread on `host:port` (0: a free port), forwarding to `upstream`."""

    def __init__(
        self,
        upstream: str,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = FAULT_KINDS,
        seed: int = 0,
    ) -> None:
        self.upstream = urlsplit(upstream)
        self.stats = _Stats()
        self._draws = random.Random(seed)
        self._lock = threading.Lock()
        self._holds: list[Hold] = []
        self.set_faults(fault_rate, fault_kinds)
        self._httpd = _ProxyServer((host, port), self)
        self._thread: Optional[threading.Thread] = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def set_faults(self, fault_rate: float, fault_kinds: tuple[str, ...] = FAULT_KINDS) -> None:
        """Fail this share of the requests from now on, with kinds drawn from `fault_kinds`."""
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], got {fault_rate}")
        unknown = set(fault_kinds) - set(FAULT_KINDS)
        if unknown or not fault_kinds:
            raise ValueError(f"fault_kinds must be some of {FAULT_KINDS}, got {fault_kinds}")
        with self._lock:
            self.fault_rate, self.fault_kinds = fault_rate, tuple(fault_kinds)

    def hold(self, predicate: Callable[[ProxiedRequest], bool], pause: bool = True) -> Hold:
        """Catch the next request matching `predicate` (see `Hold`)."""
        hold = Hold(predicate, pause)
        with self._lock:
            self._holds.append(hold)
        return hold

    def release_all(self) -> None:
        """Forget every hold and let the requests waiting at one go on."""
        with self._lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()

    def _passes_holds(self, request: ProxiedRequest) -> bool:
        with self._lock:
            hold = next((h for h in self._holds if h.predicate(request)), None)
            if hold is not None:
                self._holds.remove(hold)
        return True if hold is None else hold._take(request)

    def _draw_fault(self) -> Optional[str]:
        with self._lock:
            if self.fault_rate <= 0 or self._draws.random() >= self.fault_rate:
                return None
            return self._draws.choice(self.fault_kinds)

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fault-proxy", daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release_all()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
