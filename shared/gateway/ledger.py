"""The gateway's settlement ledger: one entry per settled payment or upto session (thread-safe).

"Settle at most once" is enforced here: :meth:`Ledger.settle` checks the nonce and the payer's
funds and records the entry under one lock, so two requests carrying one payment never both
settle.
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

    ``amount`` is in the asset's base units: the price paid, or what a session has used so
    far (never above ``cap``). ``closed`` is False while a session is open.
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
    session_id: str | None = None
    cap: int | None = None
    closed: bool = True


class Ledger:
    """Settlements in memory; each is appended to a JSON-lines file when final (optional)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: list[Settlement] = []
        self._nonces: set[tuple[str, str]] = set()
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
        key = (entry.scheme, entry.nonce.lower())
        funds = None
        if balances is not None:
            funds = {a.lower(): int(v) for a, v in balances.items()}.get(entry.payer.lower(), 0)
        with self._lock:
            if key in self._nonces:
                return "nonce_already_used"
            spent = sum(e.amount for e in self._entries if e.payer.lower() == entry.payer.lower())
            if funds is not None and spent + (entry.cap or entry.amount) > funds:
                return "insufficient_funds"
            self._nonces.add(key)
            self._entries.append(entry)
        if entry.closed:
            self._append(entry)
        return None

    def update_session(self, session_id: str, amount: int, *, closed: bool = False) -> None:
        """Set an open session's used amount (clamped to its cap); close it if asked."""
        with self._lock:
            for i, entry in enumerate(self._entries):
                if entry.session_id == session_id and not entry.closed:
                    cap = amount if entry.cap is None else entry.cap
                    self._entries[i] = final = replace(entry, amount=min(amount, cap), closed=closed)
                    break
            else:
                return
        if closed:
            self._append(final)

    def _append(self, entry: Settlement) -> None:
        if self._path is not None:
            with self._lock, self._path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
