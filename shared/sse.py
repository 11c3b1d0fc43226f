"""Incremental Server-Sent Events decoder for the gateway's streams (pure, no I/O).

Feed it bytes as they arrive; it returns the JSON objects of complete ``data:`` events. Lines
may end in ``\\n``, ``\\r\\n`` or ``\\r`` and may be split anywhere, even inside a UTF-8
character. Comments and fields other than ``data`` are skipped. ``data: [DONE]`` ends the
stream; a ``data: {"error": ...}`` event or a stream that closes before ``[DONE]`` is a
:class:`StreamInterruptedError`.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import StreamInterruptedError, truncate_body

DONE = "[DONE]"


class SSEDecoder:
    """Bytes in, decoded ``data:`` JSON objects out."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self.done = False
        """True once ``data: [DONE]`` was read."""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """Decode the complete events in ``chunk`` (plus what was buffered before)."""
        if self.done:
            return []
        self._buffer += chunk
        events: list[dict[str, Any]] = []
        for line in self._complete_lines():
            event = self._line(line)
            if event is not None:
                events.append(event)
            if self.done:
                break
        return events

    def end(self) -> list[dict[str, Any]]:
        """Signal that the connection closed.

        An unterminated last event is discarded (as SSE says), except a bare ``data: [DONE]``.
        Raises :class:`StreamInterruptedError` unless ``[DONE]`` was read.
        """
        if not self.done:
            tail = self._buffer.rstrip(b"\r").decode("utf-8", errors="replace")
            pending = [*self._data, tail.partition(":")[2].strip()] if tail else self._data
            self.done = bool(pending) and pending[-1].strip() == DONE
            self._buffer, self._data = b"", []
        if not self.done:
            raise StreamInterruptedError(
                "the stream ended before [DONE]: the answer is incomplete; retry the call"
            )
        return []

    def _complete_lines(self) -> list[bytes]:
        lines: list[bytes] = []
        buffer = self._buffer
        start = 0
        index = 0
        while index < len(buffer):
            byte = buffer[index]
            if byte == 0x0A:  # \n
                lines.append(buffer[start:index])
                start = index + 1
            elif byte == 0x0D:  # \r, alone or before \n
                if index + 1 == len(buffer):
                    break  # wait: a \n may follow in the next chunk
                lines.append(buffer[start:index])
                if buffer[index + 1] == 0x0A:
                    index += 1
                start = index + 1
            index += 1
        self._buffer = buffer[start:]
        return lines

    def _line(self, raw: bytes) -> dict[str, Any] | None:
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def _dispatch(self) -> dict[str, Any] | None:
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        if data.strip() == DONE:
            self.done = True
            return None
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise StreamInterruptedError(
                f"the stream carried an event that is not JSON: {truncate_body(data, 200)}"
            ) from None
        if not isinstance(event, dict):
            raise StreamInterruptedError("the stream carried an event that is not a JSON object")
        error = event.get("error")
        if error:
            detail = error.get("message", error) if isinstance(error, dict) else error
            raise StreamInterruptedError(
                f"the server reported an error mid-stream: {truncate_body(str(detail))}",
                body=truncate_body(json.dumps(event)),
            )
        return event
