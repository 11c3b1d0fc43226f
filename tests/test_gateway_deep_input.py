"""The local gateway survives JSON nested 100,000 deep from a client: as a request body it gets
400 naming the depth, and inside a ReAct prompt's ``Tool Args`` it is read as no arguments.
Both once killed the gateway's process (SIGSEGV: eth-account raises the recursion limit to
100,000, so ``json.loads`` overflowed the C stack), so they run in a child process: a
regression fails this test instead of killing the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    import requests
    from eth_account import Account
    from opengradient_shared import LLM, TEE_LLM
    from opengradient_shared.gateway import LocalGateway

    assert sys.getrecursionlimit() >= 100_000  # the condition for the overflow holds
    DEEP = "[" * 100_000 + "]" * 100_000
    headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    with LocalGateway(protocol=sys.argv[1]) as gw:
        for path in ("/v1/chat/completions", "/v1/completions"):
            answer = requests.post(gw.url + path, data=DEEP, headers=headers, timeout=30)
            print(path, answer.status_code, answer.json()["error"])
        react = (
            "Answer in this format.\\nThought: ...\\nAction: ...\\nAction Input: ...\\n"
            "> Tool Name: lookup\\nTool Description: Look a word up.\\nTool Args: " + DEEP + "\\n"
        )
        messages = [{"role": "system", "content": react}, {"role": "user", "content": "hi"}]
        out = LLM(Account.create(), gw.url, max_retries=0).chat(
            TEE_LLM.GPT_4_1_2025_04_14, messages, max_tokens=None
        )
        print("react", out.tee_proof.verified, bool(out.chat_output["content"]))
    """
)


def _run(protocol: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, protocol],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout.splitlines()


def test_deeply_nested_request_bodies_get_400_and_react_tool_args_do_not_crash() -> None:
    lines = _run("v1")
    refused = "400 malformed JSON body: the request body is JSON nested deeper than"
    assert lines[0].startswith("/v1/chat/completions " + refused), lines
    assert lines[1].startswith("/v1/completions " + refused), lines
    assert lines[2] == "react True True", lines


def test_the_same_holds_on_generation_2() -> None:
    lines = _run("v2")
    assert [line.split(" ", 2)[1] for line in lines[:2]] == ["400", "400"], lines
    assert lines[2] == "react True True", lines
