"""Generation-2 ``upto`` sessions: opened by one permit, bound to a route, metered up to the
permit's cap, and over when spent, idle too long or past the permit's deadline."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Session:
    """One open session (``used`` and ``last_used`` change as it is charged)."""

    id: str
    path: str
    cap: int
    deadline: int
    last_used: float
    used: int = 0

    def over(self, now: float, idle_timeout: float) -> bool:
        """Spent, past the permit's deadline, or idle too long."""
        return self.used >= self.cap or now > self.deadline or now - self.last_used > idle_timeout


class Sessions:
    """The open sessions of a gateway (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Session] = {}

    def open(self, session: Session) -> None:
        """Start serving ``session``."""
        with self._lock:
            self._open[session.id] = session

    def use(self, session_id: str, path: str, now: float, idle_timeout: float) -> Session | None:
        """The usable session ``session_id`` of route ``path``, or None."""
        with self._lock:
            session = self._open.get(session_id)
            if session is None or session.path != path or session.over(now, idle_timeout):
                return None
            session.last_used = now
            return session

    def charge(self, session: Session, cost: int) -> tuple[int, bool]:
        """Add ``cost`` (clamped to the cap); returns (amount used, session spent)."""
        with self._lock:
            session.used = min(session.cap, session.used + cost)
            return session.used, session.used >= session.cap

    def end(self, now: float, idle_timeout: float, *, everything: bool = False) -> list[Session]:
        """Remove and return the sessions that are over (all of them with ``everything``)."""
        with self._lock:
            done = [s for s in self._open.values() if everything or s.over(now, idle_timeout)]
            for session in done:
                del self._open[session.id]
        return done
