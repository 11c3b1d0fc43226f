"""The scriptable hostile loopback server of the hardening tests (see :mod:`hostile.server`)."""

from .server import HostileServer, Received, Reply, chat_events, deep_json, sse, sse_event

__all__ = ["HostileServer", "Received", "Reply", "chat_events", "deep_json", "sse", "sse_event"]
