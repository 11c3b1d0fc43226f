"""A LangChain agent that calls two tools; every model call is paid and TEE-verified.

python examples/langchain_agent.py      (needs the `langchain` package for create_agent)
"""

from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from langchain_opengradient import ChatOpenGradient

from _local import server_and_wallet


@tool
def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"18 C and light rain in {city}"


@tool
def get_local_time(city: str) -> str:
    """Current local time of a city."""
    return f"07:45 in {city}"


with server_and_wallet():
    model = ChatOpenGradient(
        model="openai/gpt-4.1-2025-04-14", max_payment=10**16
    )  # key, URL: environment
    agent = create_agent(model, [get_weather, get_local_time], system_prompt="Use the tools.")
    state = agent.invoke({"messages": [("user", "What is the weather and the time in Lisbon?")]})

    for message in state["messages"]:
        if isinstance(message, AIMessage):
            proof = message.response_metadata["tee_proof"]
            paid = message.response_metadata["payment"]
            calls = ", ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
            step = calls or message.text
            print(
                f"- {step}\n    paid {paid['amount']} base units; "
                f"TEE proof verified={proof['verified']} by {proof['tee_id'][:18]}…"
            )
