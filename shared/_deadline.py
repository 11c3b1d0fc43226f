"""An overall deadline per try for the blocking driver.

``requests`` (urllib3) bounds each socket read, not an answer: a server that sends one byte
before every read timeout could hold a call for ever. Here one watchdog thread per process
shuts down the socket of any try still waiting for its answer at its deadline, so the blocked
read ends at once and the try fails as timed out. The connections of :class:`DeadlineAdapter`
arm the watchdog when they send a request; :func:`deadline` scopes one try (for a
stream, until its headers arrive). :func:`watch_socket` bounds an open stream's socket by the
call's overall deadline (released with :func:`release` when the stream closes).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .headers import says_close


@dataclass(eq=False)
class Watch:
    """One try's deadline; ``fired`` tells whether the watchdog cut it."""

    deadline: float
    sockets: list[socket.socket] = field(default_factory=list)
    fired: bool = False
    done: bool = False


class _Watchdog:
    """Cuts the sockets of tries past their deadline (a daemon thread, started on first use)."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._queue: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, entry: Watch, sock: socket.socket) -> None:
        with self._wake:
            if entry.fired:  # already past due: this socket goes at once
                _cut(sock)
                return
            entry.sockets.append(sock)
            if len(entry.sockets) == 1:
                heapq.heappush(self._queue, (entry.deadline, next(self._order), entry))
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="opengradient-deadline", daemon=True
                    )
                    self._thread.start()
                self._wake.notify()

    def release(self, entry: Watch) -> None:
        with self._wake:
            entry.done = True
            entry.sockets.clear()

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._queue and self._queue[0][2].done:
                    heapq.heappop(self._queue)
                if not self._queue:
                    self._wake.wait()
                    continue
                due, _, entry = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._queue)
                entry.fired = True
                for sock in entry.sockets:
                    _cut(sock)
                entry.sockets.clear()


def _cut(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed: nothing is waiting on it
        sock.shutdown(socket.SHUT_RDWR)  # a blocked recv on another thread returns at once


_WATCHDOG = _Watchdog()
_current = threading.local()


def watch_socket(until: float, sock: socket.socket) -> Watch:
    """Cut ``sock`` at ``until`` (a ``time.monotonic`` instant) unless released first."""
    entry = Watch(until)
    _WATCHDOG.watch(entry, sock)
    return entry


def release(entry: Watch) -> None:
    """Stop watching ``entry``'s sockets (its stream ended in time)."""
    _WATCHDOG.release(entry)


@contextmanager
def deadline(seconds: float) -> Iterator[Watch]:
    """Scope one try on this thread: requests it sends are cut ``seconds`` from now."""
    entry = Watch(time.monotonic() + seconds)
    _current.watch = entry
    try:
        yield entry
    finally:
        _current.watch = None
        _WATCHDOG.release(entry)


class _Armed:
    """Mixed into urllib3 connections: arms the current try's deadline on each request, and
    is never reused after an answer that said ``Connection: close`` in ANY of its Connection
    headers (``http.client`` reads only the first; werkzeug sends ``keep-alive`` then
    ``close`` on a stream and swallows a next request on that socket)."""

    sock: socket.socket | None
    _closing = False

    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]  # connects, then sends
        entry: Watch | None = getattr(_current, "watch", None)
        if entry is not None and self.sock is not None:
            _WATCHDOG.watch(entry, self.sock)

    def connect(self) -> None:
        self._closing = False
        super().connect()  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        response = super().getresponse(*args, **kwargs)  # type: ignore[misc]
        self._closing = says_close(response.headers.getlist("Connection"))
        return response

    @property
    def is_connected(self) -> bool:
        """False after a closing answer, so the pool drops this connection for a fresh one."""
        return not self._closing and bool(super().is_connected)  # type: ignore[misc]


class _HTTPConnection(_Armed, HTTPConnection):
    pass


class _HTTPSConnection(_Armed, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections honour :func:`deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
