"""A LlamaIndex FunctionAgent that uses two tools; every LLM step is paid and TEE-verified.

python examples/llamaindex_agent.py
"""

import asyncio

from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ToolCallResult

from llamaindex_opengradient import OpenGradient

from _local import server_and_wallet


def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"18 C and light rain in {city}"


def get_local_time(city: str) -> str:
    """Current local time of a city."""
    return f"07:45 in {city}"


async def main() -> None:
    agent = FunctionAgent(
        tools=[get_weather, get_local_time],
        llm=OpenGradient(model="anthropic/claude-sonnet-4-5"),
        system_prompt="Use the tools.",
    )
    handler = agent.run("What is the weather and the local time in Lisbon?")
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            print(f"tool {event.tool_name}({event.tool_kwargs}) -> {event.tool_output}")
        elif isinstance(event, AgentOutput) and event.raw is not None:
            proof = event.raw["tee_proof"]  # raw: the LLM step's answer from the transport
            print(f"  LLM step: TEE proof verified: {proof['verified']}")
    print("answer:", await handler)


with server_and_wallet():
    asyncio.run(main())
