"""The gateway's ledger (thread-safe): one entry per settled payment or upto session.

"Settle at most once" is enforced here: :meth:`Ledger.settle` checks the nonce and the payer's
funds and records the entry under one lock, so two requests carrying one payment never both
settle. A generation-2 session is one entry whose ``amount`` grows with use up to its ``cap``."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Settlement:
    """One settled payment (x402 v1 ``exact``) or one upto session (x402 v2). ``amount`` is in
    base units: the price paid, or what a session has used so far (never above ``cap``);
    ``closed`` is False while a session is open; ``expires_at`` is the last valid second."""

    payer: str
    amount: int
    nonce: str
    settlement_type: str
    scheme: str
    network: str
    asset: str
    pay_to: str
    path: str
    transaction: str
    timestamp: int
    expires_at: int
    session_id: str | None = None
    cap: int | None = None
    closed: bool = True


class Ledger:
    """Settlements in memory; each is appended to a JSON-lines file when final (optional)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: list[Settlement] = []
        self._nonces: set[tuple[str, str]] = set()
        self._open: dict[str, tuple[int, float]] = {}  # session id: (entry index, last used)
        self._path = Path(path) if path else None

    @property
    def entries(self) -> list[Settlement]:
        """A snapshot of every settlement, oldest first."""
        with self._lock:
            return list(self._entries)

    def settle(self, entry: Settlement, balances: Mapping[str, int] | None) -> str | None:
        """Record ``entry`` unless its nonce was used or the payer cannot cover it; returns
        None when recorded, else the reason. ``balances``: ``{address: funds}`` or None
        (unlimited; unlisted payers have nothing). A session must be covered up to its cap."""
        payer, nonce = entry.payer.lower(), (entry.scheme, entry.nonce.lower())
        funds = {a.lower(): v for a, v in (balances or {}).items()}.get(payer, 0)
        with self._lock:
            if nonce in self._nonces:
                return "nonce_already_used"
            spent = sum(e.amount for e in self._entries if e.payer.lower() == payer)
            if balances is not None and spent + (entry.cap or entry.amount) > int(funds):
                return "insufficient_funds"
            self._nonces.add(nonce)
            self._entries.append(entry)
            if entry.closed:
                self._write(entry)
            else:
                self._open[str(entry.session_id)] = (len(self._entries) - 1, entry.timestamp)
        return None

    def charge(self, session_id: str, path: str, cost: int, now: float, idle: float) -> bool:
        """Meter ``cost`` (up to the cap) on an open session of route ``path``; False if none."""
        self.end_sessions(now, idle)
        with self._lock:
            at, _ = self._open.get(session_id, (-1, now))
            if at < 0 or self._entries[at].path != path:
                return False
            entry = self._entries[at]
            self._entries[at] = replace(entry, amount=min(entry.cap or 0, entry.amount + cost))
            self._open[session_id] = (at, now)
        return True

    def end_sessions(self, now: float, idle: float, *, everything: bool = False) -> None:
        """Close the sessions spent, past their deadline or idle over ``idle`` s (or all)."""
        with self._lock:
            for session_id, (at, used) in list(self._open.items()):
                e = self._entries[at]
                if everything or e.amount >= (e.cap or 0) or now > min(e.expires_at, used + idle):
                    self._entries[at] = replace(e, closed=True)
                    del self._open[session_id]
                    self._write(self._entries[at])

    def _write(self, entry: Settlement) -> None:
        """Append a final settlement to the file (under the lock, so lines keep their order)."""
        if self._path is not None:
            with self._path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
