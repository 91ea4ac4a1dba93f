"""An HTTP server on 127.0.0.1 (a thread) that serves checkpoints well or badly, for download tests.

``server.routes[path] = Route(body, ...)`` says how a path answers: status, headers, with or
without Content-Length, chunked, cut after some bytes, trickled slowly, stalled, redirected.
Requests are counted per path. Nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_length: bool = True  # send a Content-Length header (of the whole body)
    chunked: bool = False  # Transfer-Encoding: chunked (then no Content-Length)
    cut: Optional[int] = None  # send only this many body bytes, then close the connection
    trickle: Optional[tuple[int, float]] = None  # (bytes, seconds): send that many bytes per pause
    stall_after: Optional[int] = None  # send this many bytes, then go silent (until the test ends)
    location: Optional[str] = None  # a redirect target (with status 301/302/307/308)
    silent: bool = False  # accept the request, then never answer (until the test ends)


class LoopbackServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.stop = threading.Event()  # ends stalls and trickles when the test is over
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked encoding needs it

            def do_GET(self):
                outer.requests.append(self.path)
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                if route.silent:
                    outer.stop.wait(30)
                    return
                self.send_response(route.status)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                if route.location is not None:
                    self.send_header("Location", route.location)
                if route.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif route.content_length:
                    self.send_header("Content-Length", str(len(route.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                body = route.body if route.cut is None else route.body[: route.cut]
                try:
                    self._send(route, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: that is what some tests expect

            def _send(self, route: Route, body: bytes) -> None:
                if route.stall_after is not None:
                    self._write(route, body[: route.stall_after])
                    outer.stop.wait(30)
                    return
                if route.trickle is not None:
                    step, pause = route.trickle
                    for i in range(0, len(body), step):
                        self._write(route, body[i : i + step])
                        if outer.stop.wait(pause):
                            return
                else:
                    self._write(route, body)
                if route.chunked and route.cut is None:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _write(self, route: Route, data: bytes) -> None:
                if not data:
                    return
                if route.chunked:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                else:
                    self.wfile.write(data)
                self.wfile.flush()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def count(self, path: str) -> int:
        return self.requests.count(path)

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url(path: str = "/x.pth") -> str:
    """A loopback URL nobody listens on (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
