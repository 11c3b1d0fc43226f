"""The registry reader (pure): the eth_call request, ABI decoding of both TEEInfo layouts, and
every malformed answer or entry ending as a clear RegistryError or a skipped entry."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from eth_abi.abi import encode
from eth_hash.auto import keccak
from opengradient_shared.errors import InvalidRequestError, ServerError
from opengradient_shared.gateway.tlscert import self_signed_certificate
from opengradient_shared.registry import (
    GET_ACTIVE_TEES,
    TEE_INFO_10,
    TEE_INFO_11,
    RegistryError,
    TeeDirectory,
    active_tees_call,
    read_active_tees,
)

RPC = "http://127.0.0.1:8545"
REGISTRY = "0x703cB174AEadB35D611858369B4b1111dC9Abda6"
PAYEE = "0x7e57ca7e0000000000000000000000000000a402"
PCR = bytes.fromhex("8082af22571613eabd5dad9c7e857c4f16154ded3d387386d8193b53906f6a24")


@pytest.fixture(scope="module")
def key_der() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def cert_der() -> bytes:
    return self_signed_certificate()[0]


def info(key_der: bytes, cert_der: bytes, **changes: Any) -> list[Any]:
    fields = {
        "owner": "0x" + "11" * 20,
        "payee": PAYEE,
        "endpoint": "https://13.59.207.188",
        "key": key_der,
        "cert": cert_der,
        "pcr": PCR,
        "type": 0,
        "enabled": True,
        "registered": 1_770_000_000,
        "heartbeat": 1_770_000_900,
    }
    fields.update(changes)
    return list(fields.values())


def answer(data: bytes) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x" + data.hex()}).encode()


def eleven(*items: list[Any]) -> bytes:
    ohttp = (1, 0x20, 1, 1, b"\x01" * 32, b"cfg", 5)
    return encode([TEE_INFO_11], [[(*item, ohttp) for item in items]])


def ten(*items: list[Any]) -> bytes:
    return encode([TEE_INFO_10], [[tuple(item) for item in items]])


def test_the_call_is_get_active_tees_of_type_0_on_the_registry() -> None:
    body = json.loads(active_tees_call(REGISTRY, 0))
    assert body["method"] == "eth_call" and body["params"][1] == "latest"
    assert body["params"][0]["to"] == REGISTRY
    data = bytes.fromhex(body["params"][0]["data"][2:])
    assert GET_ACTIVE_TEES == keccak(b"getActiveTEEs(uint8)")[:4] == data[:4]
    assert data[4:] == bytes(32)


def test_eleven_field_entries_decode_with_every_field_checked(
    key_der: bytes, cert_der: bytes
) -> None:
    listing = read_active_tees(answer(eleven(info(key_der, cert_der))), RPC)
    (entry,) = listing.entries
    assert entry.tee_id == "0x" + keccak(key_der).hex()
    assert entry.endpoint == "https://13.59.207.188"
    assert entry.payment_address == "0x7e57CA7E0000000000000000000000000000A402"
    assert entry.pcr_hash == "0x" + PCR.hex()
    assert entry.tls_certificate_der == cert_der and entry.public_key_der == key_der
    assert entry.last_heartbeat_at == 1_770_000_900 and listing.skipped == ()


def test_ten_field_entries_of_older_registries_decode_too(key_der: bytes, cert_der: bytes) -> None:
    listing = read_active_tees(answer(ten(info(key_der, cert_der))), RPC)
    assert [e.tee_id for e in listing.entries] == ["0x" + keccak(key_der).hex()]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"endpoint": ""}, "no endpoint"),
        ({"cert": b""}, "no TLS certificate"),
        ({"endpoint": "http://13.59.207.188"}, "not an https://host URL"),
        ({"endpoint": "https://user:pw@host"}, "not an https://host URL"),
        ({"endpoint": "https://host:99999"}, "malformed endpoint"),
        ({"endpoint": "https://h/\n"}, "malformed endpoint"),
        ({"cert": b"not a certificate"}, "not DER X.509"),
        ({"key": b"\x30\x03\x02\x01\x01"}, "not DER SPKI"),
        ({"payee": "0x" + "00" * 20}, "no payment address"),
        ({"enabled": False}, "disabled"),
        ({"type": 1}, "teeType 1"),
    ],
)
def test_unusable_entries_are_skipped_with_the_reason(
    key_der: bytes, cert_der: bytes, change: dict[str, Any], reason: str
) -> None:
    good = info(key_der, cert_der)
    bad_key = change.get("key", key_der)
    bad = info(bad_key, cert_der, **{k: v for k, v in change.items() if k != "key"})
    listing = read_active_tees(answer(eleven(bad, good)), RPC)
    assert len(listing.entries) == 1
    assert len(listing.skipped) == 1 and reason in listing.skipped[0]


def test_a_key_that_is_not_rsa_is_skipped(key_der: bytes, cert_der: bytes) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = ec_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    listing = read_active_tees(answer(eleven(info(der, cert_der))), RPC)
    assert listing.entries == () and "not RSA" in listing.skipped[0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>502 bad gateway</html>", "did not answer with usable JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"execution reverted"}}',
         "refused the call: execution reverted"),
        (b'{"jsonrpc":"2.0","id":1,"result":12}', "without a hex 'result'"),
        (b'{"jsonrpc":"2.0","id":1,"result":"0xzz"}', "without a hex 'result'"),
        (b'{"jsonrpc":"2.0","id":1,"result":"0x"}', "no data"),
        (b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"00" * 31 + b'20"}', "not a TEEInfo[]"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 8"),
        (b'{"result": 1e999999}', "usable JSON"),
        (b'{"result":"0x' + b"ff" * 64 + b'"}', "not a TEEInfo[]"),
    ],
)  # fmt: skip
def test_garbage_from_the_rpc_is_a_registry_error_naming_it(body: bytes, problem: str) -> None:
    with pytest.raises(RegistryError, match=re.escape(problem)) as caught:
        read_active_tees(body, RPC)
    assert RPC in str(caught.value) and isinstance(caught.value, ServerError)


def test_a_huge_length_in_the_abi_data_is_refused_not_allocated() -> None:
    # offset 0x20, then a count of 2**255 elements
    data = (32).to_bytes(32, "big") + (2**255).to_bytes(32, "big")
    with pytest.raises(RegistryError, match="not a TEEInfo"):
        read_active_tees(answer(data), RPC)


def test_an_oversized_answer_is_refused() -> None:
    with pytest.raises(RegistryError, match="over 4 MiB"):
        read_active_tees(b" " * (4 * 2**20 + 1), RPC)


def test_directory_caches_pins_and_avoids_failed_tees(key_der: bytes, cert_der: bytes) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    other_der = other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = [0.0]
    body = answer(eleven(info(key_der, cert_der), info(other_der, cert_der)))
    directory = TeeDirectory(RPC, REGISTRY, clock=lambda: now[0], choice=lambda e: e[0])
    assert directory.stale()
    directory.update(200, body)
    assert not directory.stale()
    first, second = ("0x" + keccak(key_der).hex(), "0x" + keccak(other_der).hex())
    assert directory.choose().tee_id == first
    directory.failed(first)
    assert directory.stale()  # a failure re-reads the registry
    assert directory.choose().tee_id == second
    assert directory.choose(exclude=[second]).tee_id == first  # the failed one, as a last resort
    with pytest.raises(RegistryError, match="no active LLM TEE"):
        directory.choose(exclude=[first, second])
    directory.update(200, body)
    now[0] += 299
    assert not directory.stale()
    now[0] += 1
    assert directory.stale()
    pinned = TeeDirectory(RPC, REGISTRY, tee_id=second.upper().replace("0X", "0x"))
    pinned.update(200, body)
    assert [e.tee_id for e in pinned.entries()] == [second]


def test_directory_refuses_bad_settings_and_http_errors() -> None:
    with pytest.raises(InvalidRequestError, match="registry_address"):
        TeeDirectory(RPC, "0x1234")
    with pytest.raises(InvalidRequestError, match="tee_id"):
        TeeDirectory(RPC, REGISTRY, tee_id="abc")
    with pytest.raises(RegistryError, match="HTTP 503"):
        TeeDirectory(RPC, REGISTRY).update(503, b"")
