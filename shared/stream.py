"""Turns a streamed answer's bytes into :class:`StreamChunk` objects (pure, no I/O).

The final chunk (with ``finish_reason`` and the TEE fields) is held back until ``[DONE]``
arrives and its proof was checked against everything received; it then comes out carrying
the proof, the payment receipt and ``payment_hash``. A failed proof (under the "raise"
policy), an error event, or a stream that ends before ``[DONE]`` raises instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .protocol import StreamAccumulator
from .sse import SSEDecoder
from .types import PaymentReceipt, StreamChunk, TeeOrigin, TeeProof

ProofCheck = Callable[[Mapping[str, Any], str], TeeProof | None]
"""Verifies the ``tee_*`` fields against an output hash (see ``verification.check_proof``)."""


class StreamAssembler:
    """Bytes in, chunks out, for one streamed chat answer."""

    def __init__(
        self,
        check: ProofCheck,
        receipt: PaymentReceipt | None,
        payment_hash: str,
        origin: TeeOrigin | None = None,
    ) -> None:
        self._check = check
        self._origin = origin
        self._receipt = receipt
        self._payment_hash = payment_hash
        self._decoder = SSEDecoder()
        self._received = StreamAccumulator()
        self._final: tuple[StreamChunk, dict[str, Any]] | None = None
        self._finished = False

    def feed(self, data: bytes) -> list[StreamChunk]:
        """The chunks completed by ``data`` (the verified final one once ``[DONE]`` came)."""
        return self._take(self._decoder.feed(data))

    def end(self) -> list[StreamChunk]:
        """The connection closed: raises StreamInterruptedError unless ``[DONE]`` was read."""
        return self._take(self._decoder.end())

    def _take(self, events: list[dict[str, Any]]) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        for event in events:
            self._received.add(event)
            chunk = StreamChunk.from_sse_data(event)
            if chunk.is_final:
                if self._final is not None:  # an earlier "final" was not the last
                    out.append(replace(self._final[0], is_final=False))
                self._final = (chunk, event)
            else:
                out.append(chunk)
        if self._decoder.done and not self._finished:
            self._finished = True
            out.extend(self._finish())
        return out

    def _finish(self) -> list[StreamChunk]:
        chunk, fields = self._final if self._final is not None else (None, {})
        proof = self._check(fields, self._received.output_hash)
        if chunk is None:
            return []
        chunk.tee_proof = proof
        chunk.payment = self._receipt
        chunk.payment_hash = self._payment_hash
        chunk.tee_origin = self._origin
        return [chunk]
