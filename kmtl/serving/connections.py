"""Persistent HTTP/1.1 connections to one REST server, shared by threads.

`ConnectionPool` keeps the connections it has opened and reuses them
(keep-alive), instead of one TCP connection (and its set-up, and under load
the listen queue's SYN retransmits) per request. Any thread takes an idle
connection, or opens one when none is idle, and gives it back after a
complete answer; so a client used by N threads holds at most N connections.
The most recently used one is taken first, the least likely to have been
closed by the server's idle timeout.

A connection the server closed while it sat idle is only noticed when it is
used again: the request then fails before any byte of an answer (the peer
closed or reset it). That request is sent once more on a new connection;
TF Serving's Predict and GetModelStatus have no side effect, so a repeat is
safe. A failure on a new connection, a timeout, or an answer cut off in
the middle, is not repeated.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse

MAX_IDLE = 32
"""Idle connections kept at most; more are closed when given back."""


class ConnectionPool:
    """Reusable HTTP/1.1 connections to `url`'s host, safe across threads.

    Args:
        url: str. `http://host:port` (or `https://`), with an optional
            path prefix put before every request's path.
        timeout: float. Seconds for the connect and for each read or write
            on the socket.
        max_idle: int. Idle connections kept. Defaults to `MAX_IDLE`.

    Example:

    ```python
    pool = ConnectionPool("http://localhost:8501", timeout=10.0)
    status, body = pool.request("GET", "/v1/models/mmoe")
    pool.close()
    ```
    """

    def __init__(
        self, url: str, timeout: float, max_idle: int = MAX_IDLE
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "`url` must be http://host:port or https://host:port. "
                f"Received: url={url!r}"
            )
        self.url = url
        self.timeout = timeout
        self.max_idle = max_idle
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0
        """Connections opened so far (a connection per request means no
        reuse)."""

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Sends one request and reads the whole answer.

        Returns:
            `(HTTP status, body)`.

        Raises:
            TimeoutError: no connect, or no answer, within `timeout`.
            ConnectionError: refused, reset or closed by the server (after
                the one repeat on a new connection, for a reused one).
            http.client.HTTPException: an answer that is not HTTP, or is
                cut off (`IncompleteRead`).
            OSError: any other socket error (e.g. an unknown host).
        """
        headers = dict(headers or {})
        for attempt in (0, 1):
            connection, reused = self._take(fresh=attempt > 0)
            try:
                connection.request(
                    method, self._prefix + path, body=body, headers=headers
                )
                response = connection.getresponse()
            except ConnectionError:  # `RemoteDisconnected` included
                connection.close()
                if reused and attempt == 0:
                    continue  # a dropped idle connection: once more
                raise
            except BaseException:
                connection.close()
                raise
            try:
                data = response.read()
            except BaseException:
                connection.close()
                raise
            if response.will_close:
                connection.close()
            else:
                self._give_back(connection)
            return response.status, data
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Closes the idle connections, and those in use when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def __del__(self) -> None:  # a client dropped without `close()`
        for connection in getattr(self, "_idle", ()):
            connection.close()

    def _take(self, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._closed:
                raise ConnectionAbortedError("the client was closed")
            if self._idle and not fresh:
                return self._idle.pop(), True
            self.opened += 1
        kind = (
            http.client.HTTPSConnection
            if self._https
            else http.client.HTTPConnection
        )
        # http.client sets TCP_NODELAY on connect: no Nagle stall.
        return kind(self._host, self._port, timeout=self.timeout), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(connection)
                return
        connection.close()
