"""Every example and the demo run as a user runs them: ``python examples/X.py`` in a fresh
process, with no OpenGradient settings in the environment (so each starts its own local
gateway and throwaway wallet). They start together, so the file costs about one run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opengradient_shared.gateway import LocalGateway
from reliability.faultproxy import FaultProxy, tamper_content

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# What each run must print (besides exiting 0).
EXPECTED: dict[tuple[str, ...], list[str]] = {
    ("seed_api.py",): ["TEE proof verified: True", "paid 1000 base units", "completion:"],
    ("streaming.py",): [
        "The signature covers the request hash and the output hash.",
        "TEE proof verified: True",
        "The| signature|",
    ],
    ("langchain_agent.py",): [
        "get_weather({'city': 'Lisbon'})",
        "get_local_time({'city': 'Lisbon'})",
        "18 C and light rain in Lisbon",
        "TEE proof verified=True",
    ],
    ("langchain_structured_output.py",): [
        "Booking(origin='Oslo', seats=3)",
        "TEE proof verified: True",
    ],
    ("llamaindex_rag.py",): [
        "settlement-modes.md",
        "The private mode records only the hashes",
        "TEE proof verified: True",
    ],
    ("llamaindex_agent.py",): [
        "18 C and light rain in Lisbon",
        "07:45 in Lisbon",
        "TEE proof verified: True",
    ],
    ("demo.py",): [
        "(a) LangChain agent",
        "(b) LlamaIndex RAG",
        "(c) streamed chat",
        "(d) the seed API",
        "TEE proofs verified  ",
        "all answers paid and TEE-verified",
        "The private mode records only the hashes",
    ],
    ("demo.py", "--protocol", "v2"): [
        "opened session",
        "(no new payment)",
        "all answers paid and TEE-verified",
    ],
    ("demo.py", "--registry"): [
        "[setup] local chain: JSON-RPC http://127.0.0.1:",
        "registered at https://127.0.0.1:",
        "registry TEE, attestation verified",
        "registry reads       1 eth_call",
        "attestations         1 fetched, 7 answers attested",
        "all answers paid and TEE-verified",
    ],
}


def _clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENGRADIENT_")}
    return env | {"PYTHONUNBUFFERED": "1"} | extra


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[tuple[str, ...], subprocess.CompletedProcess[str]]]:
    processes = {
        argv: subprocess.Popen(
            [sys.executable, str(EXAMPLES / argv[0]), *argv[1:]],
            env=_clean_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv in EXPECTED
    }
    done = {}
    for argv, process in processes.items():
        out, _ = process.communicate(timeout=120)
        done[argv] = subprocess.CompletedProcess(process.args, process.returncode, out)
    yield done


@pytest.mark.parametrize("argv", list(EXPECTED), ids=" ".join)
def test_example_runs_and_shows_paid_verified_answers(
    runs: dict[tuple[str, ...], subprocess.CompletedProcess[str]], argv: tuple[str, ...]
) -> None:
    run = runs[argv]
    assert run.returncode == 0, run.stdout
    for text in EXPECTED[argv]:
        assert text in run.stdout, f"{text!r} missing from:\n{run.stdout}"
    if "--registry" not in argv:  # with --registry there is no URL at all
        assert "local TEE gateway at http://127.0.0.1:" in run.stdout
    assert "throwaway wallet 0x" in run.stdout


def test_demo_fails_when_answers_are_tampered_with() -> None:
    # The fault (a proxy altering one character of each answer) stands for a compromised relay.
    with LocalGateway() as gateway, FaultProxy(gateway.url) as proxy:
        proxy.script(*[tamper_content()] * 40)
        run = subprocess.run(
            [sys.executable, str(EXAMPLES / "demo.py")],
            env=_clean_environment(OPENGRADIENT_LLM_URL=proxy.url),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 1, run.stdout
    assert "VerificationError" in run.stdout
    assert "all answers paid and TEE-verified" not in run.stdout
    assert "local TEE gateway" not in run.stdout  # the configured URL was used
