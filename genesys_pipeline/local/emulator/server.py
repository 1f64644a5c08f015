"""The emulator's HTTP server: the standard library's threading HTTP/1.1 server.

Why the standard library rather than an ASGI stack: no extra dependency, and direct access to the
socket, which the "connection reset" fault needs (an ASGI app cannot make the server send a RST).
One port serves the login path (`/oauth/token`), `/api/v2/...` and the emulator's own `/emulator/...`.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import EmulatorApp
from .config import EmulatorConfig
from .messages import Request

log = logging.getLogger("genesys_pipeline.local.emulator")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of the real service
    server: "_HTTPServer"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.app.handle(Request(method, path, query, headers, body))
        if response.reset_connection:
            # SO_LINGER with a zero timeout turns close() into a TCP RST: the client sees
            # "connection reset by peer" with no HTTP response at all.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        payload = response.encoded()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and method != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        self.app = app
        super().__init__(address, _Handler)


class EmulatorServer:
    """A running emulator. Use as a context manager, or call `start()` and `stop()`.

    >>> with EmulatorServer(EmulatorConfig(seed=7, daily_volume=500)) as emulator:
    ...     emulator.base_url  # 'http://127.0.0.1:<free port>'
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.app = EmulatorApp(self.config)
        self._httpd = _HTTPServer((self.config.host, self.config.port), self.app)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> "EmulatorServer":
        # A short poll interval: shutdown() waits for the serve loop's next poll.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="genesys-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
