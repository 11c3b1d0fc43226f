"""TLS pinned to one certificate: the only trust anchor is the certificate a TEE registered
(or the one the user gave), the host name is not checked (TEEs are reached by IP address with
a certificate for ``localhost``), and the certificate's validity period is enforced.

:class:`Pins` maps an origin (``https://host:port``) to its pinned :class:`ssl.SSLContext`; the
blocking driver's :class:`PinnedAdapter` and the async driver's per-origin clients use it, so a
pinned origin never falls back to the system's certificate authorities.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ._deadline import DeadlineAdapter
from .errors import InvalidRequestError


def certificate_der(value: str | bytes) -> bytes:
    """A certificate given as PEM (text or bytes) or DER, as DER; InvalidRequestError if it is
    neither."""
    data = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InvalidRequestError(
            f"tls_certificate is not a PEM or DER X.509 certificate: {exc}"
        ) from None
    return cert.public_bytes(serialization.Encoding.DER)


def pinned_context(der: bytes) -> ssl.SSLContext:
    """A client context that trusts exactly the certificate ``der`` (no host name check)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=der)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` (lower case, default port spelled out)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


class Pins:
    """Origins and the certificate each is pinned to (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pins: dict[str, tuple[bytes, ssl.SSLContext]] = {}

    def pin(self, url: str, der: bytes) -> None:
        """Trust only ``der`` on ``url``'s origin from now on (a new certificate replaces the
        old pin; the same one keeps its context, so pooled connections stay)."""
        origin = origin_of(url)
        if not origin.startswith("https://"):
            raise InvalidRequestError(f"a certificate can only be pinned on https, not {url!r}")
        with self._lock:
            found = self._pins.get(origin)
            if found is None or found[0] != der:
                self._pins[origin] = (der, pinned_context(der))

    def context_for(self, url: str) -> ssl.SSLContext | None:
        """The pinned context of ``url``'s origin, or None when it is not pinned."""
        if not url[:8].lower().startswith("https://"):
            return None
        with self._lock:
            found = self._pins.get(origin_of(url))
        return found[1] if found else None


class PinnedAdapter(DeadlineAdapter):
    """The blocking driver's adapter: a pinned origin gets its own pool on the pinned context,
    with the system CA bundle kept out of it; other origins are verified as usual."""

    def __init__(self, pins: Pins, **options: Any) -> None:
        self.pins = pins
        super().__init__(**options)

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        context = self.pins.context_for(request.url)
        if context is not None:
            for name in ("ca_certs", "ca_cert_dir", "ca_cert_data"):
                pool.pop(name, None)
            pool.update(ssl_context=context, cert_reqs="CERT_REQUIRED", assert_hostname=False)
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if self.pins.context_for(url) is None:
            super().cert_verify(conn, url, verify, cert)
            return
        # never let the CA bundle be loaded into the pinned context
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None
