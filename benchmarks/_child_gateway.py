"""A LocalGateway in a child process for the benchmarks, so that its CPU work (payment
recovery, RSA signing) does not share the measuring process's GIL with the client measured."""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from types import TracebackType


def _serve(commands: Connection, protocol: str) -> None:
    """Child process: a LocalGateway whose knobs the parent sets through ``commands``."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(protocol=protocol) as gateway:
        commands.send(gateway.url)
        while (command := commands.recv()) is not None:
            setattr(gateway, *command)
            commands.send(True)


class ChildGateway:
    """``with ChildGateway("v1") as gateway:`` — ``gateway.url``, ``gateway.set(knob, value)``
    for ``latency``, ``chunk_delay`` and the other settable knobs of ``LocalGateway``."""

    def __init__(self, protocol: str = "v1") -> None:
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child, protocol), daemon=True
        )
        self._process.start()
        self.url: str = self._pipe.recv()

    def set(self, knob: str, value: float) -> None:
        self._pipe.send((knob, value))
        self._pipe.recv()

    def close(self) -> None:
        self._pipe.send(None)
        self._process.join(timeout=10)

    def __enter__(self) -> ChildGateway:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
