"""A raw HTTP/1.1 client over one socket: exact bytes out, exact answers in, and when the server closes."""

from __future__ import annotations

import dataclasses
import socket
import time
from types import TracebackType


@dataclasses.dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class RawClient:
    """One connection; ``timeout`` bounds every wait on it."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._timeout = timeout
        self._buf = bytearray()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def get(self, path: str, method: str = "GET", **headers: str) -> RawResponse:
        fields = (f"{name.replace('_', '-')}: {value}" for name, value in headers.items())
        lines = [f"{method} {path} HTTP/1.1", "Host: test", *fields]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.response(head_only=method == "HEAD")

    def response(self, head_only: bool = False) -> RawResponse:
        """The next answer; a HEAD answer has headers only, whatever its Content-Length says."""
        version, status, _ = self._line().split(" ", 2)
        assert version == "HTTP/1.1", version
        headers: dict[str, str] = {}
        while (line := self._line()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b"" if head_only else self._take(int(headers.get("content-length", "0")))
        return RawResponse(int(status), headers, body)

    def wait_closed(self, timeout: float) -> float | None:
        """Seconds until the server closed the connection (reading past any answer), None if it did not."""
        start = time.monotonic()
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return None
        except ConnectionResetError:
            pass
        finally:
            self.sock.settimeout(self._timeout)
        return time.monotonic() - start

    def _line(self) -> str:
        while (end := self._buf.find(b"\n")) < 0:
            self._more()
        line = self._take(end + 1)
        return line.decode("latin-1").rstrip("\r\n")

    def _take(self, size: int) -> bytes:
        while len(self._buf) < size:
            self._more()
        taken = bytes(self._buf[:size])
        del self._buf[:size]
        return taken

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self._buf += data
