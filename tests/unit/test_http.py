"""The endpoints' HTTP server over real loopback sockets: requests, answers, bounds and deadlines."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import structlog.testing

from gooddata_flight_server._http import Handler, HttpLimits, HttpServer, Request, Response, plain
from tests.raw_http import RawClient
from tests.waiting import wait_until

WAIT = 10.0  # bound for what must happen; tests pass long before it


@contextlib.contextmanager
def serving(
    routes: Mapping[str, Handler] | None = None, host: str = "127.0.0.1", **options: Any
) -> Iterator[HttpServer]:
    server = HttpServer("test", host, 0, routes or {"/ok": lambda _: plain(200)}, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_get_answers_with_the_handlers_response() -> None:
    """GET of a route gets the handler's status, headers and body, with length, date and no Server."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(201, b"made", (("Content-Type", "x/y"),))

    with serving({"/r": handler}) as server, RawClient(server.port) as client:
        answer = client.get("/r?a=1&b=2", Accept="text/plain", X_Two="2")
    assert (answer.status, answer.body) == (201, b"made")
    assert answer.headers["content-type"] == "x/y"
    assert answer.headers["content-length"] == "4"
    assert answer.headers["date"].endswith(" GMT")
    assert "server" not in answer.headers
    assert seen[0].method == "GET" and seen[0].path == "/r" and seen[0].query == "a=1&b=2"
    assert seen[0].headers["accept"] == "text/plain" and seen[0].headers["x-two"] == "2"


def test_head_answers_the_get_status_and_headers_without_a_body() -> None:
    """HEAD gets GET's status and headers (Content-Length too) and no body; the next answer follows."""
    routes = {"/r": lambda _: Response(200, b"twelve bytes")}
    with serving(routes) as server, RawClient(server.port) as client:
        head = client.get("/r", method="HEAD")
        get = client.get("/r")
    assert head.status == get.status == 200
    assert head.headers["content-length"] == get.headers["content-length"] == "12"
    assert head.body == b"" and get.body == b"twelve bytes"


@pytest.mark.parametrize("path", ["/", "/nope", "/ok/", "/OK", "/ok/x"])
def test_unknown_paths_are_404(path: str) -> None:
    """Only the exact route paths are served (a query string aside)."""
    with serving() as server, RawClient(server.port) as client:
        assert client.get(path).status == 404
        assert client.get("/ok?x=1").status == 200, "the connection stays usable"


def test_absolute_form_targets_are_served_by_their_path() -> None:
    """A request target in absolute form (``http://host/path``) is routed by its path."""
    with serving() as server, RawClient(server.port) as client:
        assert client.get(f"http://127.0.0.1:{server.port}/ok?x=1").status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "get"])
def test_other_methods_are_405_with_allow(method: str) -> None:
    """Methods other than GET and HEAD are answered 405 with ``Allow: GET, HEAD``."""
    with serving() as server, RawClient(server.port) as client:
        answer = client.get("/ok", method=method)
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD"


def test_a_request_with_a_body_is_answered_then_closed() -> None:
    """Bodies are never read: the answer closes the connection, whatever comes after."""
    with serving() as server, RawClient(server.port) as client:
        client.send(b"POST /ok HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        answer = client.response()
        assert answer.status == 405 and answer.headers["connection"] == "close"
        assert client.wait_closed(WAIT) is not None


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /ok\r\n\r\n", 400),
        (b"GET  /ok HTTP/1.1\r\n\r\n", 400),
        (b"GET /ok HTTP/2.0\r\n\r\n", 505),
        (b"GET /ok HTTP/1.1\r\nNo-Colon\r\n\r\n", 400),
        (b"GET /ok HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
        (b"GET /ok HTTP/1.1\r\nSpace Name: b\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ],
)
def test_malformed_heads_are_refused_and_closed(head: bytes, status: int) -> None:
    """A malformed request head gets 400 (505 for another HTTP version) and its connection closed."""
    with serving() as server, RawClient(server.port) as client:
        client.send(head)
        answer = client.response()
        assert answer.status == status and answer.headers["connection"] == "close"
        assert client.wait_closed(WAIT) is not None


def test_lenient_line_ends_and_leading_empty_lines() -> None:
    """Bare LF line ends and empty lines before a request line are accepted."""
    with serving() as server, RawClient(server.port) as client:
        client.send(b"\r\n\nGET /ok HTTP/1.1\nHost: x\n\n")
        assert client.response().status == 200


@pytest.mark.parametrize("endless", [True, False])
def test_oversized_heads_are_431(endless: bool) -> None:
    """A head over max_head_bytes gets 431, whether it never ends or ends too late."""
    limits = HttpLimits(max_head_bytes=1024)
    with serving(limits=limits) as server, RawClient(server.port) as client:
        client.send(b"GET /ok HTTP/1.1\r\nX-Big: " + b"a" * 2000 + (b"" if endless else b"\r\n\r\n"))
        answer = client.response()
        assert answer.status == 431 and answer.headers["connection"] == "close"
        assert client.wait_closed(WAIT) is not None


def test_a_head_of_exactly_the_limit_is_served() -> None:
    """The cap counts the head without its final empty line: a head of max_head_bytes is served."""
    head = b"GET /ok HTTP/1.1\r\nX-Pad: "
    head += b"a" * (1024 - len(head))
    with serving(limits=HttpLimits(max_head_bytes=1024)) as server, RawClient(server.port) as client:
        client.send(head + b"\r\n\r\n")
        assert client.response().status == 200


def test_keep_alive_by_default_in_http_1_1_and_on_request_in_1_0() -> None:
    """HTTP/1.1 connections stay open unless ``Connection: close``; HTTP/1.0 ones only when asked."""
    with serving() as server:
        with RawClient(server.port) as client:
            for _ in range(3):
                answer = client.get("/ok")
                assert answer.status == 200 and answer.headers["connection"] == "keep-alive"
            assert client.get("/ok", Connection="close").headers["connection"] == "close"
            assert client.wait_closed(WAIT) is not None
        with RawClient(server.port) as client:
            client.send(b"GET /ok HTTP/1.0\r\n\r\n")
            assert client.response().headers["connection"] == "close"
            assert client.wait_closed(WAIT) is not None
        with RawClient(server.port) as client:
            for _ in range(2):
                client.send(b"GET /ok HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                assert client.response().headers["connection"] == "keep-alive"


def test_pipelined_requests_are_answered_in_order() -> None:
    """Requests sent back to back in one write are answered one after the other."""
    routes = {"/a": lambda _: Response(200, b"a"), "/b": lambda _: Response(200, b"b")}
    with serving(routes) as server, RawClient(server.port) as client:
        client.send(b"".join(b"%s %s HTTP/1.1\r\n\r\n" % r for r in REQUESTS))
        answers = [client.response(head_only=method == b"HEAD") for method, _ in REQUESTS]
    expected = [(200, b"a"), (200, b""), (404, b"Not Found"), (200, b"b")]
    assert [(a.status, a.body) for a in answers] == expected


REQUESTS = [(b"GET", b"/a"), (b"HEAD", b"/b"), (b"GET", b"/x"), (b"GET", b"/b")]


def test_an_idle_kept_alive_connection_is_closed_after_the_timeout() -> None:
    """After an answer, a kept-alive connection that sends nothing more is closed after timeout_sec."""
    with serving(limits=HttpLimits(timeout_sec=0.3)) as server, RawClient(server.port) as client:
        asked = time.monotonic()  # the answer comes after this: the connection's deadline too
        assert client.get("/ok").status == 200
        assert client.wait_closed(WAIT) is not None
        # closed at the deadline (0.3 s after the answer, less the sweep's 0.05 s slack), not sooner
        assert 0.25 <= time.monotonic() - asked < 2.0
        wait_until(lambda: server.open_connections == 0, what="the server forgot the connection")


def test_a_head_sent_byte_by_byte_is_cut_off_at_the_timeout() -> None:
    """The head deadline counts from the connect: bytes trickling in do not extend it."""
    with serving(limits=HttpLimits(timeout_sec=0.5)) as server, RawClient(server.port) as client:
        start = time.monotonic()
        sent = b""
        with pytest.raises(OSError):  # the server closed: a send or a read fails
            for byte in b"GET /ok HTTP/1.1\r\nX-Slow: " + b"s" * 1000:
                client.send(bytes([byte]))
                sent += bytes([byte])
                if client.wait_closed(0.02) is not None:
                    raise ConnectionResetError("closed by the server")
        assert time.monotonic() - start < 3.0
        assert len(sent) < 1000


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout() -> None:
    """A connection without a single byte sent is closed after timeout_sec."""
    with serving(limits=HttpLimits(timeout_sec=0.3)) as server, RawClient(server.port) as client:
        closed_after = client.wait_closed(WAIT)
        assert closed_after is not None and closed_after < 2.0


def test_at_the_connection_cap_the_longest_waiting_connection_is_closed() -> None:
    """Beyond max_connections a new connection is served and the one waiting longest is closed."""
    limits = HttpLimits(max_connections=3, timeout_sec=WAIT)
    with serving(limits=limits) as server:
        idle = [RawClient(server.port) for _ in range(3)]
        try:
            wait_until(lambda: server.open_connections == 3, what="three open")
            with RawClient(server.port) as newcomer:
                assert newcomer.get("/ok").status == 200
            assert idle[0].wait_closed(WAIT) is not None, "the oldest went"
            assert idle[1].get("/ok").status == 200, "the others stay"
            assert server.open_connections <= 3
        finally:
            for client in idle:
                client.close()


def test_a_kept_alive_connection_waits_from_its_last_answer() -> None:
    """The eviction order is by the start of the current wait: a connection just served is the newest."""
    limits = HttpLimits(max_connections=2, timeout_sec=WAIT)
    with serving(limits=limits) as server, RawClient(server.port) as first:
        with RawClient(server.port) as second:
            wait_until(lambda: server.open_connections == 2, what="two open")
            assert first.get("/ok").status == 200  # first now waits since after second
            with RawClient(server.port) as third:
                assert third.get("/ok").status == 200
                assert second.wait_closed(WAIT) is not None
                assert first.get("/ok").status == 200


def _gated(gate: threading.Event, entered: threading.Event | None = None) -> Handler:
    def handler(request: Request) -> Response:
        if entered is not None:
            entered.set()
        gate.wait(WAIT)
        return Response(200, b"late")

    return handler


def test_worker_handlers_answer_and_keep_the_connection() -> None:
    """With workers, handlers run off the selector thread and answers keep the connection."""
    names: list[str] = []

    def handler(request: Request) -> Response:
        names.append(threading.current_thread().name)
        return Response(200, b"from a worker")

    with serving({"/w": handler}, workers=1, thread_name="t-http") as server:
        with RawClient(server.port) as client:
            assert [client.get("/w").body for _ in range(3)] == [b"from a worker"] * 3
            assert client.get("/w", method="HEAD").body == b""
    assert set(names) == {"t-http-worker-0"}


def test_a_slow_handler_gets_503_at_its_deadline_and_its_late_answer_is_dropped() -> None:
    """A worker answer later than handler_timeout_sec becomes 503 and a closed connection."""
    gate = threading.Event()
    limits = HttpLimits(handler_timeout_sec=0.3)
    with serving({"/slow": _gated(gate), "/ok": lambda _: plain(200)}, workers=1, limits=limits) as server:
        with RawClient(server.port) as client, structlog.testing.capture_logs() as logs:
            answer = client.get("/slow")
            assert answer.status == 503 and answer.headers["connection"] == "close"
            assert client.wait_closed(WAIT) is not None
        gate.set()
        with RawClient(server.port) as client:
            assert client.get("/ok").status == 200, "the worker is free again"
    assert [e["event"] for e in logs] == ["http_handler_timeout"]


def test_requests_beyond_max_pending_are_503_at_once() -> None:
    """While the workers hold max_pending requests, more get 503 with Retry-After at once."""
    gate, entered = threading.Event(), threading.Event()
    limits = HttpLimits(max_pending=1, handler_timeout_sec=WAIT)
    with serving({"/slow": _gated(gate, entered)}, workers=1, limits=limits) as server:
        with RawClient(server.port) as waiting, RawClient(server.port) as extra:
            waiting.send(b"GET /slow HTTP/1.1\r\n\r\n")
            assert entered.wait(WAIT)
            answer = extra.get("/slow")
            assert answer.status == 503 and answer.headers["retry-after"] == "1"
            gate.set()
            assert waiting.response().body == b"late"
            assert extra.get("/slow").body == b"late", "the connection stays usable after a 503"


def test_a_failing_handler_is_a_500_and_logged_once() -> None:
    """A handler raising answers 500, logs the error once, and the endpoint goes on."""

    def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    for workers in (0, 1):
        with serving({"/b": broken}, workers=workers) as server, RawClient(server.port) as client:
            with structlog.testing.capture_logs() as logs:
                assert client.get("/b").status == 500
            assert client.get("/b").status == 500
        assert [e["event"] for e in logs] == ["http_handler_failed"]


def test_stop_is_quick_and_closes_every_connection() -> None:
    """stop() with idle, partial and waiting connections open returns quickly and closes them all."""
    gate, entered = threading.Event(), threading.Event()
    with serving({"/slow": _gated(gate, entered)}, workers=1) as server:
        clients = [RawClient(server.port) for _ in range(5)]
        clients[1].send(b"GET /slow HTT")
        clients[2].send(b"GET /slow HTTP/1.1\r\n\r\n")  # stuck in the worker until the gate opens
        assert entered.wait(WAIT)
        wait_until(lambda: server.open_connections == 5, what="all connected")
        with structlog.testing.capture_logs() as logs:
            start = time.monotonic()
            server.stop()
            stopped_in = time.monotonic() - start
    gate.set()
    assert stopped_in < 0.9
    assert all(client.wait_closed(WAIT) is not None for client in clients)
    assert [e["event"] for e in logs] == ["http_threads_still_busy"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)


def test_stop_joins_its_threads() -> None:
    """Once stopped, none of the server's threads is left."""
    with serving(workers=2, thread_name="t-joined") as server, RawClient(server.port) as client:
        assert client.get("/ok").status == 200
    assert not [t for t in threading.enumerate() if t.name.startswith("t-joined")]


def test_open_connections_counts_connections() -> None:
    """open_connections follows connects and closes."""
    with serving() as server:
        assert server.open_connections == 0
        clients = [RawClient(server.port) for _ in range(4)]
        wait_until(lambda: server.open_connections == 4, what="four open")
        for client in clients:
            client.close()
        wait_until(lambda: server.open_connections == 0, what="all closed")


def test_a_taken_port_names_the_endpoint() -> None:
    """A bind failure says which endpoint and which address."""
    with serving() as server:
        other = HttpServer("metrics", "127.0.0.1", server.port, {})
        with pytest.raises(OSError, match=rf"cannot bind the metrics endpoint to 127.0.0.1:{server.port}"):
            other.start()
        other.stop()  # harmless when it never started


def test_ipv6_hosts() -> None:
    """A host with a colon binds IPv6."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with serving(host="::1") as server, RawClient(server.port, host="::1") as client:
            assert client.get("/ok").status == 200
    except OSError as e:
        if "cannot bind" in str(e):
            pytest.skip(f"no IPv6 loopback: {e}")
        raise


@pytest.mark.parametrize(
    "limits",
    [{"timeout_sec": 0}, {"max_connections": 0}, {"backlog": -1}, {"max_head_bytes": 0}, {"max_pending": 0}],
)
def test_limits_must_be_positive(limits: dict[str, float]) -> None:
    """Every bound must be positive."""
    with pytest.raises(ValueError, match="must be positive"):
        HttpLimits(**limits)  # type: ignore[arg-type]
