"""A small HTTP/1.1 server for the health and metrics endpoints that hostile connections cannot stall.

Probes must get through while anything else is connected: a failed readiness or liveness probe
gets the pod restarted. So there is no thread per connection. One selector thread per endpoint
accepts, reads request heads without blocking and writes the answers; handlers that may be slow
(metrics generation runs user collectors) run on a small pool of worker threads. Everything is
bounded: the listen backlog, the open connections, the request head size, the requests queued for
the workers, and every connection has a deadline: a request head must be complete within
``timeout_sec`` of connecting (or of the previous answer, when kept alive), an answer must be taken
within ``timeout_sec``, and a worker must answer within ``handler_timeout_sec`` (else 503).

Only GET and HEAD of the configured paths are served; anything else is answered by the server
itself (404, 405, 400, 431). Request bodies are never read: a request announcing one is answered
and its connection closed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import errno
import http
import queue
import re
import selectors
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping

import structlog

__all__ = ["Handler", "HttpLimits", "HttpServer", "Request", "Response"]

log = structlog.get_logger(__name__)

_READING, _WAITING, _WRITING, _LINGERING, _CLOSED = range(5)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_RECV_BYTES = 16384
_ACCEPT_BATCH = 64  # accepts per wake-up, so a connection flood cannot starve reads and writes
_ACCEPT_PAUSE_SEC = 0.1  # after running out of file descriptors, before accepting again
_LINGER_SEC = 1.0  # reading what a client still sends after a closing answer, so it gets no reset
_STOP_JOIN_SEC = 0.5
_SWEEP_SLACK_SEC = 0.05  # deadlines this close are handled together: fewer sweeps of all connections


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    """The bounds of one endpoint; the defaults suit probes and scrapes."""

    timeout_sec: float = 5.0
    max_connections: int = 128
    backlog: int = 1024  # a burst of connections queues here instead of costing a probe a 1 s SYN retry
    max_head_bytes: int = 8192
    handler_timeout_sec: float = 10.0
    max_pending: int = 4  # requests queued or running on the workers; beyond it 503

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"{field.name} must be positive, got {getattr(self, field.name)!r}")


@dataclasses.dataclass(frozen=True)
class Request:
    method: str  # GET or HEAD
    path: str
    query: str
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/plain; charset=utf-8"),)


Handler = Callable[[Request], Response]


def plain(status: int) -> Response:
    """A response whose body is the status phrase."""
    return Response(status, _phrase(status).encode())


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


@dataclasses.dataclass(slots=True, eq=False)
class _Job:
    conn: _Conn
    handler: Handler
    request: Request
    response: Response | None = None
    cancelled: bool = False  # set by the selector thread: its answer is no longer wanted


@dataclasses.dataclass(slots=True, eq=False)
class _Conn:
    sock: socket.socket
    state: int = _READING
    buf: bytearray = dataclasses.field(default_factory=bytearray)
    scanned: int = 0  # how much of buf is known to hold no end of the request head
    out: bytes | memoryview = b""  # what is left to send of the answer
    deadline: float = 0.0
    events: int = 0  # what the selector watches it for
    keep_alive: bool = False
    head_only: bool = False
    job: _Job | None = None


class HttpServer:
    """Serves ``routes`` (path to handler) from :meth:`start` to :meth:`stop`.

    With ``workers=0`` handlers run on the selector thread and must be quick and never block; with
    ``workers > 0`` they run on that many worker threads.
    """

    def __init__(
        self,
        what: str,
        host: str,
        port: int,
        routes: Mapping[str, Handler],
        *,
        limits: HttpLimits | None = None,
        workers: int = 0,
        thread_name: str = "gdfs-http",
    ) -> None:
        self._what = what
        self._host = host
        self._port = port
        self._routes = dict(routes)
        self._limits = limits or HttpLimits()
        self._workers = workers
        self._thread_name = thread_name
        self._conns: dict[_Conn, None] = {}  # in the order they began their current wait
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._pending = 0
        self._threads: list[threading.Thread] = []
        self._next_sweep = float("inf")
        self._accept_paused_until: float | None = None
        self._stopping = False
        self._listener: socket.socket | None = None
        self._port_bound = 0

    @property
    def port(self) -> int:
        """The bound port (the real one when started on port 0)."""
        return self._port_bound

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def start(self) -> None:
        self._listener = self._bind()
        self._port_bound = int(self._listener.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._threads = [
            threading.Thread(target=self._work, name=f"{self._thread_name}-worker-{i}", daemon=True)
            for i in range(self._workers)
        ]
        loop = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._threads.insert(0, loop)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Close the listener and every connection; quick even with connections open."""
        if not self._threads:
            return
        self._stopping = True
        self._wake()
        for _ in range(self._workers):
            self._jobs.put(None)
        deadline = time.monotonic() + _STOP_JOIN_SEC
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in self._threads if t.is_alive()]
        if busy:  # a worker stuck in a handler; daemon threads, so it cannot hold the process
            log.warning("http_threads_still_busy", endpoint=self._what, threads=busy)
        self._threads = []

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(self._limits.backlog)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise OSError(
                f"cannot bind the {self._what} endpoint to {self._host}:{self._port}: {e.strerror}"
            ) from e
        return sock

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed (stopped)
            self._wake_w.send(b"\0")

    # -- the selector thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                now = time.monotonic()
                wait = None if self._next_sweep == float("inf") else max(0.0, self._next_sweep - now)
                for key, _ in self._selector.select(wait):
                    conn = key.data
                    if conn is not None:
                        self._guarded(conn, self._on_event)
                    elif key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._on_wake()
                if time.monotonic() >= self._next_sweep:
                    self._sweep()
        except Exception:
            log.exception("http_server_failed", endpoint=self._what)
        finally:
            for conn in list(self._conns):
                self._close(conn)
            for job in self._drain_done():
                job.cancelled = True
            self._selector.close()
            if self._listener is not None:
                self._listener.close()
            self._wake_r.close()
            self._wake_w.close()

    def _deadline(self, conn: _Conn, seconds: float) -> None:
        conn.deadline = time.monotonic() + seconds
        self._next_sweep = min(self._next_sweep, conn.deadline)

    def _watch(self, conn: _Conn, events: int) -> None:
        if events == conn.events:
            return
        if not conn.events:
            self._selector.register(conn.sock, events, conn)
        elif not events:
            self._selector.unregister(conn.sock)
        else:
            self._selector.modify(conn.sock, events, conn)
        conn.events = events

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("http_accept_paused", endpoint=self._what, error=e.strerror)
                    self._selector.unregister(self._listener)
                    self._accept_paused_until = time.monotonic() + _ACCEPT_PAUSE_SEC
                    self._next_sweep = min(self._next_sweep, self._accept_paused_until)
                return  # else the connection was reset before it was accepted
            if len(self._conns) >= self._limits.max_connections and not self._evict():
                sock.close()
                continue
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            self._conns[conn] = None
            self._deadline(conn, self._limits.timeout_sec)
            self._watch(conn, selectors.EVENT_READ)

    def _evict(self) -> bool:
        """Close the connection that has waited longest, unless every one waits for a worker."""
        for conn in self._conns:
            if conn.state != _WAITING:
                self._close(conn)
                return True
        return False

    def _guarded(self, conn: _Conn, action: Callable[[_Conn], None]) -> None:
        """A failure with one connection closes that connection, never the endpoint."""
        try:
            action(conn)
        except Exception:
            log.exception("http_connection_failed", endpoint=self._what)
            self._close(conn)

    def _on_event(self, conn: _Conn) -> None:
        if conn.state == _WRITING:
            self._flush(conn)
        else:
            self._receive(conn)
        if conn.state == _READING:
            self._serve(conn)

    def _receive(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
        elif conn.state == _READING:
            conn.buf += data

    def _serve(self, conn: _Conn) -> None:
        """Answer every complete request head in the buffer, one at a time."""
        limits = self._limits
        while conn.state == _READING:
            if not conn.scanned:
                while conn.buf and conn.buf[0] in b"\r\n":  # empty lines before a request are ignored
                    del conn.buf[:1]
            match = _HEAD_END.search(conn.buf, conn.scanned, limits.max_head_bytes + 4)
            if match is None:
                if len(conn.buf) > limits.max_head_bytes:
                    self._answer(conn, plain(431), keep_alive=False)
                else:  # a byte-by-byte sender costs a scan of its new bytes, not of all it sent
                    conn.scanned = max(0, len(conn.buf) - 3)
                return
            head = bytes(conn.buf[: match.start()])
            del conn.buf[: match.end()]
            conn.scanned = 0
            self._dispatch(conn, head)

    def _dispatch(self, conn: _Conn, head: bytes) -> None:
        parsed = _parse(head)
        if isinstance(parsed, int):
            self._answer(conn, plain(parsed), keep_alive=False)
            return
        request, keep_alive = parsed
        conn.head_only = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
            allow = (("Allow", "GET, HEAD"), *plain(405).headers)
            self._answer(conn, Response(405, plain(405).body, allow), keep_alive)
            return
        handler = self._routes.get(request.path)
        if handler is None:
            self._answer(conn, plain(404), keep_alive)
        elif not self._workers:
            self._answer(conn, self._call(handler, request), keep_alive)
        elif self._pending >= self._limits.max_pending:
            busy = Response(503, plain(503).body, (("Retry-After", "1"), *plain(503).headers))
            self._answer(conn, busy, keep_alive)
        else:
            conn.job = _Job(conn, handler, request)
            conn.keep_alive = keep_alive
            conn.state = _WAITING
            self._watch(conn, 0)
            self._deadline(conn, self._limits.handler_timeout_sec)
            self._pending += 1
            self._jobs.put(conn.job)

    def _call(self, handler: Handler, request: Request) -> Response:
        try:
            return handler(request)
        except Exception:
            log.exception("http_handler_failed", endpoint=self._what, path=request.path)
            return plain(500)

    def _answer(self, conn: _Conn, response: Response, keep_alive: bool) -> None:
        lines = [f"HTTP/1.1 {response.status} {_phrase(response.status)}"]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        lines.append(f"Content-Length: {len(response.body)}")
        lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        conn.out = memoryview(head if conn.head_only else head + response.body)
        conn.head_only = False
        conn.keep_alive = keep_alive
        conn.job = None
        conn.state = _WRITING
        self._deadline(conn, self._limits.timeout_sec)
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            self._watch(conn, selectors.EVENT_WRITE)
        elif conn.keep_alive:
            conn.state = _READING
            del self._conns[conn]  # its wait begins now: to the end of the eviction order
            self._conns[conn] = None
            self._deadline(conn, self._limits.timeout_sec)
            self._watch(conn, selectors.EVENT_READ)
        else:
            self._linger(conn)

    def _linger(self, conn: _Conn) -> None:
        """Half-close, then read and drop what the client still sends until it closes too."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state = _LINGERING
        conn.buf.clear()
        self._deadline(conn, min(_LINGER_SEC, self._limits.timeout_sec))
        self._watch(conn, selectors.EVENT_READ)

    def _close(self, conn: _Conn) -> None:
        if conn.state == _CLOSED:
            return
        if conn.job is not None:
            conn.job.cancelled = True
        conn.state = _CLOSED
        self._watch(conn, 0)
        self._conns.pop(conn, None)
        conn.sock.close()

    def _sweep(self) -> None:
        now = time.monotonic()
        self._next_sweep = float("inf")
        for conn in list(self._conns):
            if conn.deadline > now + _SWEEP_SLACK_SEC:
                self._next_sweep = min(self._next_sweep, conn.deadline)
            elif conn.state == _WAITING:
                assert conn.job is not None
                conn.job.cancelled = True
                log.warning("http_handler_timeout", endpoint=self._what, path=conn.job.request.path)
                self._answer(conn, plain(503), keep_alive=False)
            else:
                self._close(conn)
        paused, listener = self._accept_paused_until, self._listener
        if paused is not None and listener is not None and now >= paused:
            self._accept_paused_until = None
            self._selector.register(listener, selectors.EVENT_READ)
        elif paused is not None:
            self._next_sweep = min(self._next_sweep, paused)

    def _on_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        for job in self._drain_done():
            self._pending -= 1
            conn = job.conn
            if not job.cancelled and job.response is not None and conn.job is job:
                self._guarded(conn, self._on_answer)

    def _on_answer(self, conn: _Conn) -> None:
        assert conn.job is not None and conn.job.response is not None
        self._answer(conn, conn.job.response, conn.keep_alive)
        if conn.state == _READING:
            self._serve(conn)

    def _drain_done(self) -> list[_Job]:
        jobs = []
        try:
            while True:
                jobs.append(self._done.get_nowait())
        except queue.Empty:
            return jobs

    # -- worker threads ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.cancelled:  # its client may have gone, or its deadline passed, while queued
                job.response = self._call(job.handler, job.request)
            self._done.put(job)
            self._wake()


def _parse(head: bytes) -> tuple[Request, bool] | int:
    """The request and whether its connection may stay open, or the status to refuse it with."""
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].rstrip("\r").split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return 400
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        return 505 if version.startswith("HTTP/") else 400
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.rstrip("\r").partition(":")
        if not colon or not name or name != name.strip() or " " in name or "\t" in name:
            return 400  # also obsolete line folding, which starts with whitespace
        key, value = name.lower(), value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if target.startswith(("http://", "https://")):  # absolute form
        split = urllib.parse.urlsplit(target)
        path, query = split.path or "/", split.query
    else:
        path, _, query = target.partition("?")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    if "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0":
        keep_alive = False  # bodies are never read: closing is the only way past one
    return Request(method, path, query, headers), keep_alive
