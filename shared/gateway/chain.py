"""A local chain holding a TEE registry, for tests and the demo: the project's own registry
contract (``TEERegistry.vy``, the read ABI of OpenGradient's ``TEERegistry``) compiled with
``vyper``, deployed on an in-process EVM (``eth-tester`` with ``py-evm``) and served over
JSON-RPC on 127.0.0.1, so clients read it through the same ``eth_call`` path as a real chain.

Needs the ``dev`` extra (vyper, eth-tester, py-evm). ``with LocalChain() as chain:
chain.register(gateway)`` enters a TLS :class:`LocalGateway`; ``chain.rpc_url`` and
``chain.registry_address`` are what a client is given.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from eth_hash.auto import keccak

MAX_RPC_BODY = 2**20


@cache
def compiled_registry() -> tuple[list[dict[str, Any]], str]:
    """ABI and deployment bytecode of ``TEERegistry.vy`` (compiled once per process)."""
    import vyper

    source = (Path(__file__).parent / "TEERegistry.vy").read_text()
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    return out["abi"], out["bytecode"]


class LocalChain:
    """An in-process EVM with the registry deployed, served over JSON-RPC HTTP on 127.0.0.1.

    ``rpc_calls`` counts the JSON-RPC requests served. Thread-safe (one lock around the EVM).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        from eth_tester import EthereumTester, PyEVMBackend

        self._lock = threading.Lock()
        self.tester = EthereumTester(PyEVMBackend())
        self.admin = self.tester.get_accounts()[0]
        self.abi, bytecode = compiled_registry()
        tx = self.tester.send_transaction({"from": self.admin, "data": bytecode, "gas": 6_000_000})
        self.registry_address: str = self.tester.get_transaction_receipt(tx)["contract_address"]
        self.rpc_calls = 0
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None

    # -- the registry ----------------------------------------------------------------------

    def transact(self, function: str, *args: Any) -> Any:
        """Send a transaction calling ``function(*args)`` as the admin (mined at once)."""
        from eth_abi.abi import encode

        data = self._selector(function) + encode(self._inputs(function), list(args))
        with self._lock:
            self.tester.send_transaction(
                {"from": self.admin, "to": self.registry_address, "data": "0x" + data.hex(),
                 "gas": 3_000_000}
            )  # fmt: skip

    def approve_pcr(self, pcr_hash: str, tee_type: int = 0) -> None:
        """Approve a PCR hash for a TEE type (the admin's decision)."""
        self.transact("approvePCR", bytes.fromhex(pcr_hash[2:]), tee_type)

    def register(
        self,
        gateway: Any,
        *,
        pcr_hash: str | None = None,
        payment_address: str | None = None,
        endpoint: str | None = None,
        tls_certificate_der: bytes | None = None,
        tee_type: int = 0,
    ) -> str:
        """Enter a running TLS gateway (approving its PCR hash: by default its local
        enclave's measurements, as the real registry's admin approves a build's); returns its
        tee_id."""
        pcr_hash = gateway.enclave.pcr_hash if pcr_hash is None else pcr_hash
        self.approve_pcr(pcr_hash, tee_type)
        key = serialization.load_pem_public_key(gateway.public_key_pem.encode())
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        cert = gateway.tls_certificate_der if tls_certificate_der is None else tls_certificate_der
        self.transact(
            "registerTEE", der, cert or b"", payment_address or gateway.pay_to,
            gateway.url if endpoint is None else endpoint, bytes.fromhex(pcr_hash[2:]), tee_type,
        )  # fmt: skip
        return "0x" + keccak(der).hex()

    def disable(self, tee_id: str) -> None:
        """Disable a TEE (the owner's or admin's decision)."""
        self.transact("disableTEE", bytes.fromhex(tee_id[2:]))

    def heartbeat(self, tee_id: str) -> None:
        """Record a heartbeat of ``tee_id`` now."""
        self.transact("heartbeat", bytes.fromhex(tee_id[2:]))

    def advance(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block."""
        with self._lock:
            block = self.tester.get_block_by_number("latest")
            self.tester.time_travel(int(block["timestamp"]) + seconds)
            self.tester.mine_blocks(1)

    def _function(self, name: str) -> dict[str, Any]:
        return next(f for f in self.abi if f.get("type") == "function" and f["name"] == name)

    def _inputs(self, name: str) -> list[str]:
        return [p["type"] for p in self._function(name)["inputs"]]

    def _selector(self, name: str) -> bytes:
        return keccak(f"{name}({','.join(self._inputs(name))})".encode())[:4]

    # -- JSON-RPC --------------------------------------------------------------------------

    def rpc(self, request: Any) -> dict[str, Any]:
        """Answer one JSON-RPC request object (``eth_call``, ``eth_chainId``,
        ``eth_blockNumber``)."""
        ident = request.get("id") if isinstance(request, dict) else None
        try:
            method, params = request["method"], request.get("params", [])
            with self._lock:
                self.rpc_calls += 1
                if method == "eth_call":
                    call = {
                        "from": self.admin,
                        "to": params[0]["to"],
                        "data": params[0].get("data", "0x"),
                    }
                    result: Any = self.tester.call(call, "latest")
                elif method == "eth_chainId":
                    result = hex(131277322940537)
                elif method == "eth_blockNumber":
                    result = hex(self.tester.get_block_by_number("latest")["number"])
                else:
                    return _error(ident, -32601, f"method {method!r} not found")
        except Exception as exc:  # noqa: BLE001 - a JSON-RPC node answers errors as JSON
            return _error(ident, -32000, f"{type(exc).__name__}: {exc}")
        return {"jsonrpc": "2.0", "id": ident, "result": result}

    @property
    def rpc_url(self) -> str:
        """``http://127.0.0.1:N``: where the JSON-RPC is served."""
        if self._server is None:
            raise RuntimeError("the chain is not served; call start() or use 'with'")
        return f"http://{self._address[0]}:{self._server.server_port}"

    def start(self) -> LocalChain:
        """Serve JSON-RPC in a daemon thread."""
        if self._server is None:
            self._server = _RpcServer(self._address, self)
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalChain:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}


class _RpcServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], chain: LocalChain) -> None:
        super().__init__(address, _RpcHandler)
        self.chain = chain


class _RpcHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RpcServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = self.headers.get("Content-Length", "")
        if not length.isdecimal() or int(length) > MAX_RPC_BODY:
            self.close_connection = True
            self._reply(413, {"error": "a body of at most 1 MiB with a Content-Length"})
            return
        try:
            request = json.loads(self.rfile.read(int(length)))
        except ValueError:
            self._reply(200, _error(None, -32700, "parse error"))
            return
        if isinstance(request, list):
            self._reply(200, [self.server.chain.rpc(item) for item in request])
        else:
            self._reply(200, self.server.chain.rpc(request))

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
