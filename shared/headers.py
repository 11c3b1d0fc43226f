"""HTTP header rules used in more than one place: one case-insensitive getter, and whether an
answer says its connection closes (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in ``headers``, case-insensitively (a driver's mapping,
    which is already case-insensitive, or a plain dict)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def says_close(connection_values: Iterable[str]) -> bool:
    """Whether any of an answer's ``Connection`` header values (there may be several, as
    werkzeug behind Flask sends ``keep-alive`` and then ``close``) has the ``close`` token."""
    return any(
        token.strip().lower() == "close"
        for value in connection_values
        for token in value.split(",")
    )
