"""A URL-less LLM on a real local registry: the project's registry contract on an in-process
EVM, served over JSON-RPC on 127.0.0.1, listing TLS LocalGateways. Nothing about the chain is
mocked; the only injected choice is which TEE is tried first (to make failover deterministic)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM
from opengradient_shared.attestation import AttestationError
from opengradient_shared.errors import NetworkError, PaymentPolicyError, ServerError
from opengradient_shared.gateway import LocalGateway
from opengradient_shared.registry import RegistryError, TeeEntry
from signing_spy import SignSpy

pytest.importorskip("vyper")
pytest.importorskip("eth_tester")
from opengradient_shared.gateway.chain import LocalChain  # noqa: E402

MODEL = "openai/gpt-4.1-2025-04-14"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def chain() -> Iterator[LocalChain]:
    with LocalChain() as served:
        yield served


def tls_gateway(key_pem: bytes | None, **options: Any) -> LocalGateway:
    return LocalGateway(tls=True, signing_key_pem=key_pem, **options)


@pytest.fixture
def tee(tee_signing_key_pem: bytes) -> Iterator[LocalGateway]:
    with tls_gateway(tee_signing_key_pem) as gw:
        yield gw


def client(chain: LocalChain, account: LocalAccount, **options: Any) -> LLM:
    """A URL-less client on ``chain`` (attestation off unless a test turns it on: each local
    gateway's enclave has a test root of its own)."""
    options.setdefault("attestation", "off")
    return LLM(account, rpc_url=chain.rpc_url, registry_address=chain.registry_address, **options)


def first(tee_id: str) -> Any:
    """A choice that takes ``tee_id`` when offered (the order failover is tested in)."""

    def choose(entries: Sequence[TeeEntry]) -> TeeEntry:
        return next((e for e in entries if e.tee_id == tee_id), entries[0])

    return choose


def test_url_less_llm_finds_pins_pays_and_verifies_a_registry_tee(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount
) -> None:
    tee_id = chain.register(tee)
    llm = client(
        chain, account, attestation="verify", attestation_root_sha256=tee.enclave.root_sha256
    )
    assert chain.rpc_calls == 0  # constructing touches nothing
    out = llm.chat(MODEL, HELLO)
    assert out.tee_proof is not None and out.tee_proof.verified and out.tee_proof.tee_id == tee_id
    origin = out.tee_origin
    assert origin is not None and origin.source == "registry" and origin.tls_pinned
    assert (origin.tee_id, origin.endpoint) == (tee_id, tee.url)
    assert origin.payment_address == tee.pay_to and origin.pcr_hash is not None
    assert origin.registry_address == chain.registry_address
    assert origin.attestation == "verified" and origin.module_id == tee.enclave.module_id
    assert origin.pcr_hash == tee.enclave.pcr_hash and origin.attested_at is not None
    assert out.payment is not None and out.payment.pay_to.lower() == tee.pay_to.lower()
    completion = llm.completion(MODEL, "say")
    assert completion.tee_origin == origin
    final = list(llm.chat(MODEL, HELLO, stream=True))[-1]
    assert final.is_final and final.tee_origin == origin and final.tee_proof is not None
    assert chain.rpc_calls == 1  # the listing is cached
    assert tee.tls_handshakes == 1  # one pinned, pooled connection

    async def twice() -> None:
        for _ in range(2):
            answer = await llm.achat(MODEL, HELLO)
            assert answer.tee_origin == origin
        await llm.aclose()

    asyncio.run(twice())
    assert chain.rpc_calls == 1 and tee.tls_handshakes == 2  # + the asyncio pool's one
    llm.close()


def test_a_stale_heartbeat_or_a_disabled_tee_is_not_used(
    chain: LocalChain, tee_signing_key_pem: bytes, account: LocalAccount, spy: SignSpy
) -> None:
    with tls_gateway(None) as stale, tls_gateway(tee_signing_key_pem) as fresh:
        stale_id = chain.register(stale)
        chain.advance(1000)
        fresh_id = chain.register(fresh)
        chain.advance(900)  # stale's heartbeat is now 1900 s old, fresh's 900 s
        llm = client(chain, account, tee_id=stale_id)
        with pytest.raises(RegistryError, match=f"no active TEE {stale_id}"):
            llm.chat(MODEL, HELLO)
        assert stale.request_count == 0 and spy.calls == 0
        chain.heartbeat(stale_id)
        llm = client(chain, account, tee_id=stale_id)
        assert llm.chat(MODEL, HELLO).tee_origin.tee_id == stale_id  # type: ignore[union-attr]
        chain.disable(fresh_id)
        others = client(chain, account)
        for _ in range(4):
            assert others.chat(MODEL, HELLO).tee_origin.tee_id == stale_id  # type: ignore[union-attr]
        assert fresh.request_count == 0


def test_a_tee_that_cannot_be_reached_fails_over_before_any_payment(
    chain: LocalChain, tee: LocalGateway, tee_signing_key_pem: bytes, account: LocalAccount
) -> None:
    dead = tls_gateway(None).start()
    dead_id = chain.register(dead)
    dead.stop()  # registered and active on chain, but nobody listens
    live_id = chain.register(tee)
    llm = client(chain, account, max_retries=0)
    llm._network.directory._choice = first(dead_id)  # type: ignore[union-attr]
    out = llm.chat(MODEL, HELLO)
    assert out.tee_origin is not None and out.tee_origin.tee_id == live_id
    assert out.tee_proof is not None and out.tee_proof.verified
    assert chain.rpc_calls == 2  # the failure re-read the registry
    assert len(tee.ledger.entries) == 1  # one payment, to the live TEE

    async def once() -> str | None:
        fresh = client(chain, Account.create(), max_retries=0)
        fresh._network.directory._choice = first(dead_id)  # type: ignore[union-attr]
        answer = await fresh.achat(MODEL, HELLO)
        await fresh.aclose()
        return answer.tee_origin.tee_id if answer.tee_origin else None

    assert asyncio.run(once()) == live_id


def test_every_tee_down_ends_in_a_network_error(chain: LocalChain, account: LocalAccount) -> None:
    dead = tls_gateway(None).start()
    chain.register(dead)
    dead.stop()
    with pytest.raises(NetworkError, match="could not get an answer"):
        client(chain, account, max_retries=0).chat(MODEL, HELLO)


def test_a_certificate_that_does_not_match_the_pin_is_refused(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount, spy: SignSpy
) -> None:
    with tls_gateway(None) as impostor:
        chain.register(tee, tls_certificate_der=impostor.tls_certificate_der)
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        client(chain, account, max_retries=0).chat(MODEL, HELLO)
    assert tee.request_count == 0 and spy.calls == 0


def test_a_pay_to_other_than_the_registered_payment_address_is_never_signed(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount, spy: SignSpy
) -> None:
    chain.register(tee, payment_address="0x" + "ab" * 20)
    with pytest.raises(PaymentPolicyError, match="payment address") as caught:
        client(chain, account).chat(MODEL, HELLO)
    assert "0xabab" in str(caught.value).lower() and "nothing was signed" in str(caught.value)
    assert spy.calls == 0 and tee.ledger.entries == []


def test_a_dead_rpc_is_a_network_error_naming_it(account: LocalAccount, spy: SignSpy) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    llm = LLM(account, rpc_url=url, max_retries=0)
    with pytest.raises(NetworkError, match=f"the TEE registry RPC {url} could not be reached"):
        llm.chat(MODEL, HELLO)

    async def acall() -> None:
        await llm.achat(MODEL, HELLO)

    with pytest.raises(NetworkError, match="TEE registry RPC"):
        asyncio.run(acall())
    assert spy.calls == 0


class _Garbage(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"41" * 96 + b'"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def test_an_rpc_answering_garbage_is_a_registry_error(account: LocalAccount) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        with pytest.raises(RegistryError, match=f"registry RPC {url}") as caught:
            LLM(account, rpc_url=url).chat(MODEL, HELLO)
        assert isinstance(caught.value, ServerError)
    finally:
        server.shutdown()
        server.server_close()


def test_an_explicit_https_url_can_pin_a_certificate(
    tee: LocalGateway, account: LocalAccount
) -> None:
    pem = tee.tls_certificate_pem
    assert pem is not None
    llm = LLM(account, tee.url, tls_certificate=pem)
    out = llm.chat(MODEL, HELLO)
    assert out.tee_origin is not None and out.tee_origin.tls_pinned
    assert out.tee_origin.source == "url" and out.tee_origin.tee_id == tee.tee_id
    context = llm._pins.context_for(tee.url)
    assert context is not None
    assert context.cert_store_stats()["x509"] == 1  # the pin alone: no CA bundle leaked in
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        LLM(account, tee.url, max_retries=0).chat(MODEL, HELLO)  # a self-signed certificate


def test_settings_come_from_the_environment_and_bad_ones_are_named(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.register(tee)
    monkeypatch.setenv("OPENGRADIENT_RPC_URL", chain.rpc_url)
    monkeypatch.setenv("OPENGRADIENT_REGISTRY_ADDRESS", chain.registry_address)
    llm = LLM(account, attestation_root_sha256=tee.enclave.root_sha256)
    assert llm.chat(MODEL, HELLO).tee_origin.source == "registry"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="registry_address"):
        LLM(account, registry_address="0x12")
    with pytest.raises(ValueError, match="rpc_url"):
        LLM(account, rpc_url="ftp://x")
    with pytest.raises(ValueError, match="tee_public_key needs a server URL"):
        LLM(account, tee_public_key=tee.public_key_pem)


def _attesting(chain: LocalChain, tee: LocalGateway, account: LocalAccount, **options: Any) -> LLM:
    root = tee.enclave.root_sha256
    return client(chain, account, attestation="verify", attestation_root_sha256=root, **options)


def test_the_verdict_is_cached_until_the_leaf_certificate_expires(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount
) -> None:
    chain.register(tee)
    llm = _attesting(chain, tee, account)
    first_origin = llm.chat(MODEL, HELLO).tee_origin
    assert first_origin is not None and first_origin.attestation == "verified"
    assert llm.chat(MODEL, HELLO).tee_origin == first_origin  # no second attestation
    network = llm._network
    assert network is not None
    (verdict,) = network._verdicts.values()
    network._clock = lambda: verdict.expires_at + 1  # a fake clock: the leaf has expired
    tee.enclave._clock = network._clock  # the enclave's NSM clock moves with it
    later = llm.chat(MODEL, HELLO).tee_origin
    assert later is not None and later.attested_at == verdict.expires_at + 1


def test_attestation_to_another_root_is_refused_before_anything_is_paid(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount, spy: SignSpy
) -> None:
    chain.register(tee)
    with pytest.raises(AttestationError, match="attestation does not verify") as caught:
        client(chain, account, attestation="verify").chat(MODEL, HELLO)  # AWS's root
    assert "root" in str(caught.value).lower()
    assert tee.request_count == 0 and spy.calls == 0


def test_measurements_other_than_the_registered_or_allowed_ones_are_refused(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount, spy: SignSpy
) -> None:
    other_pcr = "0x" + "ab" * 32
    chain.register(tee, pcr_hash=other_pcr)  # the admin approved a build the enclave is not
    with pytest.raises(AttestationError, match="attestation does not verify"):
        _attesting(chain, tee, account).chat(MODEL, HELLO)
    assert tee.request_count == 0 and spy.calls == 0


def test_an_allow_list_that_lacks_the_measurements_is_refused(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount, spy: SignSpy
) -> None:
    chain.register(tee)
    llm = _attesting(chain, tee, account, allowed_measurements=["0x" + "cd" * 32])
    with pytest.raises(AttestationError, match="attestation does not verify"):
        llm.chat(MODEL, HELLO)
    allowed = _attesting(chain, tee, account, allowed_measurements=[tee.enclave.pcr_hash])
    assert allowed.chat(MODEL, HELLO).tee_origin.attestation == "verified"  # type: ignore[union-attr]
    assert spy.calls == 1


def test_an_enclave_attesting_another_signing_key_is_refused(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount, spy: SignSpy
) -> None:
    chain.register(tee)
    tee.enclave.signing_key_der = b"another key"  # user_data binds a key that is not registered
    with pytest.raises(AttestationError, match="attestation does not verify"):
        _attesting(chain, tee, account).chat(MODEL, HELLO)
    assert tee.request_count == 0 and spy.calls == 0


def test_bad_attestation_settings_are_named(account: LocalAccount) -> None:
    with pytest.raises(ValueError, match="attestation 'maybe'"):
        LLM(account, attestation="maybe")
    with pytest.raises(ValueError, match="attestation_root_sha256"):
        LLM(account, attestation_root_sha256="abc")
    with pytest.raises(ValueError, match="allowed_measurements"):
        LLM(account, allowed_measurements="0x" + "ab" * 32)  # type: ignore[arg-type]


def test_an_expired_registered_certificate_is_refused_although_pinned(
    chain: LocalChain, tee_signing_key_pem: bytes, account: LocalAccount, spy: SignSpy
) -> None:
    import datetime as dt

    from opengradient_shared.gateway.tlscert import self_signed_certificate, server_context

    gateway = tls_gateway(tee_signing_key_pem)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    expired, key_pem = self_signed_certificate(days=356, not_before=long_ago)
    gateway.tls_certificate_der, gateway._tls = expired, server_context(expired, key_pem)
    with gateway:
        chain.register(gateway)  # the registry holds exactly the certificate served
        with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
            client(chain, account, max_retries=0).chat(MODEL, HELLO)
        assert gateway.request_count == 0 and spy.calls == 0
        # the reason, seen on a bare handshake with the same pinned context
        import ssl

        from opengradient_shared.pinning import pinned_context

        port = int(gateway.url.rsplit(":", 1)[1])
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            pytest.raises(ssl.SSLCertVerificationError) as caught,
        ):
            pinned_context(expired).wrap_socket(raw, server_hostname="127.0.0.1")
        assert caught.value.verify_message == "certificate has expired"


def test_a_payment_that_never_left_does_not_stop_the_failover(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount, spy: SignSpy
) -> None:
    other = tls_gateway(None).start()
    other_id = chain.register(other)
    live_id = chain.register(tee)
    llm = client(chain, account, max_retries=0)
    llm._network.directory._choice = first(other_id)  # type: ignore[union-attr]
    assert llm.chat(MODEL, HELLO).tee_origin.tee_id == other_id  # type: ignore[union-attr]
    other.stop()
    llm.close()  # drop the pooled connection: the next one to ``other`` is refused
    signed = spy.calls
    out = llm.chat(MODEL, HELLO)  # pre-signs for ``other`` (terms known), cannot connect
    assert out.tee_origin is not None and out.tee_origin.tee_id == live_id
    assert spy.calls == signed + 2  # the payment that never left, then the live TEE's
    assert len(other.ledger.entries) == 1 and len(tee.ledger.entries) == 1


def test_a_failure_after_a_paid_request_may_have_arrived_is_not_moved(
    chain: LocalChain, tee: LocalGateway, account: LocalAccount
) -> None:
    chain.register(tee)
    with tls_gateway(None) as spare:
        chain.register(spare)
        llm = client(chain, account, max_retries=0, timeout=1.0)
        llm._network.directory._choice = first(tee.tee_id)  # type: ignore[union-attr]
        llm.chat(MODEL, HELLO)  # learns the terms: the next call's first request is paid
        tee.latency = 3.0  # the paid request arrives, its answer does not come in time
        with pytest.raises(NetworkError, match="timed out"):
            llm.chat(MODEL, HELLO)
        assert spare.request_count == 0  # not moved to another TEE: it may have been paid
