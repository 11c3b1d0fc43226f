"""The gateway's settlement ledger: one entry per settled payment or upto session (thread-safe).

The ledger is also where "settle at most once" is enforced: :meth:`Ledger.settle` checks the
nonce and the payer's funds and records the entry under one lock, so two requests carrying the
same payment can never both settle.
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

    ``amount`` is in the asset's base units: the price paid, or for a session the metered
    amount used so far (never above ``cap``). ``closed`` is False while a session is open.
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

    def to_json(self) -> dict[str, object]:
        """The entry as a JSON-ready dict (a line of the ledger file)."""
        return asdict(self)


class Ledger:
    """Settlements in memory, each appended to a JSON-lines file when final (optional)."""

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

    def spent(self, payer: str) -> int:
        """The total settled for ``payer`` (open sessions count their metered amount)."""
        with self._lock:
            return self._spent(payer)

    def settle(self, entry: Settlement, balances: Mapping[str, int] | None) -> str | None:
        """Record ``entry`` unless its nonce was used or the payer cannot cover it.

        ``balances`` maps payer addresses to their funds (None: unlimited); an open session
        must be covered up to its cap. Returns None when recorded, else the rejection reason.
        """
        key = (entry.scheme, entry.nonce.lower())
        with self._lock:
            if key in self._nonces:
                return "nonce_already_used"
            funds = _balance_of(balances, entry.payer)
            needed = entry.cap if entry.cap is not None else entry.amount
            if funds is not None and self._spent(entry.payer) + needed > funds:
                return "insufficient_funds"
            self._nonces.add(key)
            self._entries.append(entry)
        if entry.closed:
            self._append(entry)
        return None

    def update_session(self, session_id: str, amount: int, *, closed: bool = False) -> None:
        """Set an open session's metered amount (clamped to its cap); close it if asked."""
        with self._lock:
            for i, entry in enumerate(self._entries):
                if entry.session_id == session_id and not entry.closed:
                    cap = entry.cap if entry.cap is not None else amount
                    self._entries[i] = replace(entry, amount=min(amount, cap), closed=closed)
                    final = self._entries[i]
                    break
            else:
                return
        if closed:
            self._append(final)

    def _spent(self, payer: str) -> int:
        return sum(e.amount for e in self._entries if e.payer.lower() == payer.lower())

    def _append(self, entry: Settlement) -> None:
        if self._path is None:
            return
        line = json.dumps(entry.to_json(), sort_keys=True) + "\n"
        with self._lock, self._path.open("a", encoding="utf-8") as handle:
            handle.write(line)


def _balance_of(balances: Mapping[str, int] | None, payer: str) -> int | None:
    if balances is None:
        return None
    for address, funds in balances.items():
        if address.lower() == payer.lower():
            return int(funds)
    return 0
