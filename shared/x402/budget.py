"""A client-wide spending budget: the total base units a client may authorize (pure, no I/O).

Every payment the client signs — a generation-1 authorization or a generation-2 session permit
— is reserved against the budget *before* it is signed, under a lock, so concurrent calls can
never together exceed it. A signed authorization stays counted even if the server then refuses
it: the payee holds a valid signature and could still settle it. Amounts are kept per asset (in
that asset's base units, like ``max_payment``), so one number bounds each asset separately.
"""

from __future__ import annotations

import threading

from ..errors import InvalidRequestError, PaymentPolicyError


class Budget:
    """The total ``limit`` (base units per asset) this client may authorize; None is no limit
    (what was authorized is still counted and reported)."""

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidRequestError(
                f"budget must be a non-negative integer of base units (or None), got {limit!r}"
            )
        self.limit = limit
        self._spent: dict[str, int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Budget(limit={self.limit!r})"

    def spent(self, asset: str) -> int:
        """Base units of ``asset`` authorized so far."""
        with self._lock:
            return self._spent.get(asset.lower(), 0)

    def remaining(self, asset: str) -> int | None:
        """Base units of ``asset`` still allowed, or None without a limit."""
        if self.limit is None:
            return None
        return max(0, self.limit - self.spent(asset))

    def reserve(self, asset: str, amount: int) -> None:
        """Count ``amount`` of ``asset`` as authorized, or raise :class:`PaymentPolicyError`
        naming budget, spent and price when it would go over (then nothing is counted)."""
        key = asset.lower()
        with self._lock:
            spent = self._spent.get(key, 0)
            if self.limit is not None and spent + amount > self.limit:
                raise PaymentPolicyError(
                    f"payment refused, nothing was signed: the server asks {amount} base units "
                    f"of {asset}, but this client's budget is {self.limit} and {spent} are "
                    f"already authorized ({self.limit - spent} left); raise budget to pay more"
                )
            self._spent[key] = spent + amount

    def release(self, asset: str, amount: int) -> None:
        """Give back a reservation whose payment was never signed."""
        key = asset.lower()
        with self._lock:
            self._spent[key] = max(0, self._spent.get(key, 0) - amount)
