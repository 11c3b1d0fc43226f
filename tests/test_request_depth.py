"""A request nested absurdly deep (a tool schema or response format) is refused as bad input,
before anything is signed or sent, instead of crashing the process: eth-account raises the
recursion limit to 100,000, so serializing JSON 100,000 levels deep overflows the C stack
(SIGSEGV). The crash case runs in a child process, so that a regression fails this test rather
than killing the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM, InvalidRequestError
from opengradient_shared.protocol import MAX_REQUEST_DEPTH, prepare_chat

MODEL = TEE_LLM.GPT_4_1_2025_04_14
MESSAGES = [{"role": "user", "content": "hi"}]


def _nested(depth: int) -> dict[str, Any]:
    """A JSON schema ``depth`` dicts deep under ``properties``."""
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth - 1):
        node["a"] = {}
        node = node["a"]
    return root


def _tool(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "f", "parameters": parameters}}]


def test_a_100000_deep_tool_schema_is_refused_without_a_crash(gateway: Any) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from eth_account import Account
        from opengradient_shared import LLM, TEE_LLM, InvalidRequestError
        assert sys.getrecursionlimit() >= 100_000  # the condition for the overflow holds
        schema = node = {{}}
        for _ in range(100_000):
            node["a"] = {{}}
            node = node["a"]
        tools = [{{"type": "function", "function": {{"name": "f", "parameters": schema}}}}]
        llm = LLM(Account.create(), {gateway.url!r}, max_retries=0)
        try:
            llm.chat(TEE_LLM.GPT_4_1_2025_04_14, [{{"role": "user", "content": "hi"}}], tools=tools)
        except InvalidRequestError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("refused: tools nests dicts and lists more than"), done.stdout
    assert gateway.request_count == 0 and gateway.key_request_count == 0


@pytest.mark.parametrize("where", ["tools", "response_format"])
def test_nesting_over_the_limit_is_refused_naming_the_field(where: str) -> None:
    deep = _nested(MAX_REQUEST_DEPTH + 1)
    options: dict[str, Any] = (
        {"tools": _tool(deep)}
        if where == "tools"
        else {"response_format": {"type": "json_schema", "json_schema": {"schema": deep}}}
    )
    with pytest.raises(InvalidRequestError, match=f"^{where} nests dicts and lists more than"):
        prepare_chat(MODEL, MESSAGES, **options)


def test_a_schema_that_refers_to_itself_is_refused() -> None:
    schema: dict[str, Any] = {"type": "object"}
    schema["properties"] = {"self": schema}
    with pytest.raises(InvalidRequestError, match="refers to itself"):
        prepare_chat(MODEL, MESSAGES, tools=_tool(schema))


def test_control_a_deep_but_reasonable_schema_is_sent_and_answered(
    gateway: Any, account: LocalAccount
) -> None:
    """Control: nesting well within the limit (tool schemas of real code are a few levels deep)
    goes through, and is paid and answered."""
    llm = LLM(account, gateway.url, max_retries=0)
    out = llm.chat(MODEL, MESSAGES, tools=_tool(_nested(MAX_REQUEST_DEPTH - 10)))
    assert out.tee_proof is not None and out.tee_proof.verified
    assert gateway.request_count >= 1
