"""Incremental Server-Sent Events decoder for the gateway's streams (pure, no I/O).

Feed it bytes as they arrive; it returns the JSON objects of complete ``data:`` events. Lines
may end in ``\\n``, ``\\r\\n`` or ``\\r`` and may be split anywhere, even inside a UTF-8
character. Comments and fields other than ``data`` are skipped. ``data: [DONE]`` ends the
stream; a ``data: {"error": ...}`` event or a stream that closes before ``[DONE]`` is a
:class:`StreamInterruptedError`.

Decoding is linear in the bytes received (each byte is scanned for a line end once), and one
event (its lines, or one line still without its end) may hold at most ``max_event_bytes``: a
server that sends more is cut off with :class:`StreamInterruptedError`. Event JSON is read by
:func:`opengradient_shared.wire.loads` (bounded nesting, no NaN/Infinity).
"""

from __future__ import annotations

import re
from typing import Any

from . import wire
from .errors import ServerError, StreamInterruptedError, excerpt

DONE = "[DONE]"
DEFAULT_MAX_EVENT_BYTES = 1_048_576
"""The default limit on one event's size (1 MiB; a real event is well under 1 KiB)."""

_LINE_END = re.compile(rb"\r\n|\r|\n")


class SSEDecoder:
    """Bytes in, decoded ``data:`` JSON objects out."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if isinstance(max_event_bytes, bool) or not isinstance(max_event_bytes, int):
            raise TypeError("max_event_bytes must be an int")
        if max_event_bytes < 16:
            raise ValueError("max_event_bytes must be at least 16")
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._size = 0  # bytes of data lines of the current event
        self.done = False
        """True once ``data: [DONE]`` was read."""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """Decode the complete events in ``chunk`` (plus what was buffered before)."""
        if self.done:
            return []
        buffer = self._buffer
        scan_from = max(len(buffer) - 1, 0)  # a \r kept at the end may pair with a \n
        buffer += chunk
        events: list[dict[str, Any]] = []
        start = 0
        while not self.done:
            found = _LINE_END.search(buffer, scan_from)
            if found is None:
                break
            if found.group() == b"\r" and found.end() == len(buffer):
                break  # wait: a \n may follow in the next chunk
            event = self._line(bytes(buffer[start : found.start()]))
            if event is not None:
                events.append(event)
            start = scan_from = found.end()
        del buffer[:start]
        if not self.done and self._size + len(buffer) > self.max_event_bytes:
            self._overflow()
        return events

    def end(self) -> list[dict[str, Any]]:
        """Signal that the connection closed.

        An unterminated last event is discarded (as SSE says), except a bare ``data: [DONE]``.
        Raises :class:`StreamInterruptedError` unless ``[DONE]`` was read.
        """
        if not self.done:
            tail = bytes(self._buffer).rstrip(b"\r").decode("utf-8", errors="replace")
            pending = [d.decode("utf-8", "replace") for d in self._data]
            if tail:
                pending.append(tail.partition(":")[2].strip())
            self.done = bool(pending) and pending[-1].strip() == DONE
            self._buffer, self._data, self._size = bytearray(), [], 0
        if not self.done:
            raise StreamInterruptedError(
                "the stream ended before [DONE]: the answer is incomplete; retry the call"
            )
        return []

    def _overflow(self) -> None:
        self._buffer, self._data, self._size = bytearray(), [], 0
        self.done = True  # read nothing more
        raise StreamInterruptedError(
            f"the stream sent an event larger than max_event_bytes={self.max_event_bytes}; "
            "it was cut off"
        )

    def _line(self, line: bytes) -> dict[str, Any] | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if name == b"data":
            value = value[1:] if value.startswith(b" ") else value
            self._size += len(value) + 1
            if self._size > self.max_event_bytes:
                self._overflow()
            self._data.append(value)
        return None

    def _dispatch(self) -> dict[str, Any] | None:
        if not self._data:
            return None
        data = b"\n".join(self._data)
        self._data, self._size = [], 0
        if data.strip() == DONE.encode():
            self.done = True
            return None
        try:
            event = wire.loads(data, "a stream event")
        except ServerError as exc:
            raise StreamInterruptedError(f"the stream carried an unreadable event: {exc}") from None
        if not isinstance(event, dict):
            raise StreamInterruptedError("the stream carried an event that is not a JSON object")
        error = event.get("error")
        if error:
            detail = error.get("message", error) if isinstance(error, dict) else error
            raise StreamInterruptedError(
                f"the server reported an error mid-stream: {excerpt(detail, 500)}",
                body=excerpt(error, 500),
            )
        return event
