"""Generation-2 ``upto`` sessions: opened by one permit, bound to a route, metered by tokens
up to the permit's cap, and closed when spent, idle too long or past the permit's deadline."""

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


class Sessions:
    """The open sessions of a gateway (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Session] = {}

    def open(self, session_id: str, path: str, cap: int, deadline: int, now: float) -> Session:
        """Open a session for ``path`` with ``cap`` base units, usable until ``deadline``."""
        session = Session(session_id, path, cap, deadline, now)
        with self._lock:
            self._open[session.id] = session
        return session

    def use(self, session_id: str, path: str, now: float, idle_timeout: float) -> Session | None:
        """The open session ``session_id`` of ``path``, or None when unknown, of another
        route, spent, idle past ``idle_timeout`` or past its deadline."""
        with self._lock:
            session = self._open.get(session_id)
            if session is None or session.path != path:
                return None
            if session.used >= session.cap or now > session.deadline:
                return None
            if now - session.last_used > idle_timeout:
                return None
            session.last_used = now
            return session

    def charge(self, session: Session, cost: int) -> tuple[int, bool]:
        """Add ``cost`` (clamped to the cap); returns (amount used, session now spent)."""
        with self._lock:
            session.used = min(session.cap, session.used + cost)
            return session.used, session.used >= session.cap

    def expired(self, now: float, idle_timeout: float) -> list[Session]:
        """Remove and return every session that can no longer be used."""
        with self._lock:
            done = [
                s
                for s in self._open.values()
                if s.used >= s.cap or now > s.deadline or now - s.last_used > idle_timeout
            ]
            for session in done:
                del self._open[session.id]
        return done

    def close_all(self) -> list[Session]:
        """Remove and return every session (the gateway stops)."""
        with self._lock:
            done = list(self._open.values())
            self._open.clear()
        return done
