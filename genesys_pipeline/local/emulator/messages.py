"""A request in, a `Response` out: the values the HTTP server (server.py) and the request handling
(app.py and the endpoint modules) pass each other.

Apart from both so that the handlers know nothing of sockets (a test can call `EmulatorApp.handle`
directly) and the server nothing of the API.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable
from urllib.parse import parse_qs

import orjson

from .errors import bad_request

JSON_TYPE = "application/json; charset=UTF-8"


@dataclasses.dataclass
class Response:
    status: int
    body: Any = None  # JSON-ready value, or None for an empty body
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    reset_connection: bool = False  # an injected fault: drop the TCP connection with a RST
    raw: bytes | None = None  # an injected fault: these bytes go out instead of the JSON of `body`

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        # orjson: compact UTF-8 like the real service, and fast enough that the emulator is not
        # what a benchmark of the pipeline measures.
        return orjson.dumps(self.body)


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=False)

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            raise bad_request("The request body is required.")
        try:
            value = json.loads(self.body)
        except ValueError as error:
            raise bad_request(f"The request body is not valid JSON: {error}")
        if not isinstance(value, dict):
            raise bad_request("The request body must be a JSON object.")
        return value


# An endpoint's handler: the request and its route's match in; the JSON-ready answer (or a whole
# `Response`) out, or an `ApiError` raised.
Handler = Callable[[Request, re.Match[str]], Any]
