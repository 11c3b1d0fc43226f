"""The gateway's ledger (thread-safe): one entry per settled payment or upto session, and the
metering of open sessions.

"Settle at most once" is enforced here: :meth:`Ledger.settle` checks the nonce and the payer's
funds and records the entry under one lock, so two requests carrying one payment never both
settle. A generation-2 session is one entry whose ``amount`` grows with use up to its ``cap``;
it is over when spent, idle too long or past its permit's deadline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Settlement:
    """One settled payment (x402 v1 ``exact``) or one upto session (x402 v2).

    ``amount`` is in the asset's base units: the price paid, or what a session has used so far
    (never above ``cap``). ``closed`` is False while a session is open; ``expires_at`` is the
    payment's last valid second (a session's deadline).
    """

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
        self._last_used: dict[str, float] = {}
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
        payer = entry.payer.lower()
        funds = {a.lower(): v for a, v in (balances or {}).items()}.get(payer, 0)
        with self._lock:
            if (entry.scheme, entry.nonce.lower()) in self._nonces:
                return "nonce_already_used"
            spent = sum(e.amount for e in self._entries if e.payer.lower() == payer)
            if balances is not None and spent + (entry.cap or entry.amount) > int(funds):
                return "insufficient_funds"
            self._nonces.add((entry.scheme, entry.nonce.lower()))
            self._entries.append(entry)
            if entry.session_id:
                self._last_used[entry.session_id] = entry.timestamp
        if entry.closed:
            self._append(entry)
        return None

    def charge(self, session_id: str, path: str, cost: int, now: float, idle: float) -> bool:
        """Meter ``cost`` on the open session ``session_id`` of route ``path`` (clamped to the
        cap); False when there is no such usable session."""
        self.end_sessions(now, idle)
        with self._lock:
            at = next((i for i, e in enumerate(self._entries)
                       if e.session_id == session_id and not e.closed and e.path == path), None)
            if at is None:
                return False
            entry = self._entries[at]
            cap = entry.cap or 0
            self._entries[at] = replace(entry, amount=min(cap, entry.amount + cost))
            self._last_used[session_id] = now
        return True

    def end_sessions(self, now: float, idle: float, *, everything: bool = False) -> None:
        """Close the sessions that are over (all open ones with ``everything``)."""
        with self._lock:
            done = []
            for i, e in enumerate(self._entries):
                over = e.amount >= (e.cap or 0) or now > e.expires_at
                if e.session_id and not e.closed and (
                    everything or over or now - self._last_used[e.session_id] > idle
                ):
                    self._entries[i] = replace(e, closed=True)
                    done.append(self._entries[i])
        for entry in done:
            self._append(entry)

    def _append(self, entry: Settlement) -> None:
        if self._path is not None:
            with self._lock, self._path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
