"""The local gateway's deterministic model follows the request in the patterns people run:
extraction fills schema fields by name, a JSON schema is honoured at any turn (a LangChain
``create_agent`` with ``ProviderStrategy`` gets its structured response after a tool call), a
ReAct prompt gets the ReAct format (a LlamaIndex ``ReActAgent`` calls its tool) and JSON mode
uses the keys the prompt names. Unit checks on the model, then the frameworks against a real
LocalGateway."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ProviderStrategy
from langchain_core.tools import tool
from llama_index.core.agent.workflow import ReActAgent
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from opengradient_shared.gateway import model
from opengradient_shared.gateway.fill import fill_object
from pydantic import BaseModel

from langchain_opengradient import ChatOpenGradient
from llamaindex_opengradient import OpenGradient

MODEL = "openai/gpt-4.1-2025-04-14"


class Person(BaseModel):
    """A person."""

    name: str
    age: int
    city: str


class Weather(BaseModel):
    """The weather report of a city."""

    city: str
    temperature: float
    conditions: str


def _key(account: Any) -> str:
    return "0x" + bytes(account.key).hex()


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


# ---- the model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Ana is 34 and lives in Porto",
        "In Porto lives Ana, who is 34.",
        "Extract: Ana is 34 and lives in Porto.",
        "Name: Ana. Age: 34. City: Porto.",
        "Her name is Ana, her age is 34 and her city is Porto",
    ],
)
def test_extraction_fills_fields_by_name_and_type(text: str) -> None:
    assert fill_object(Person.model_json_schema(), text) == {
        "name": "Ana",
        "age": 34,
        "city": "Porto",
    }


def test_a_number_goes_to_the_field_named_near_it() -> None:
    schema = {
        "type": "object",
        "properties": {"width": {"type": "number"}, "length": {"type": "number"}},
    }
    assert fill_object(schema, "length 3 m, width 5 m", fill_all=True) == {
        "width": 5.0,
        "length": 3.0,
    }


def test_json_schema_is_honoured_after_a_tool_result() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    body: dict[str, Any] = {
        "messages": _user("What is the weather in Lisbon?"),
        "tools": tools,
        "response_format": _schema_format(Weather.model_json_schema()),
    }
    first = model.chat(body)
    assert first.finish_reason == "tool_calls"
    body["messages"] += [
        {"role": "assistant", "content": "", "tool_calls": first.tool_calls},
        {
            "role": "tool",
            "tool_call_id": first.tool_calls[0]["id"],
            "content": "18 C and light rain in Lisbon",
        },
    ]
    second = model.chat(body)
    assert second.finish_reason == "stop" and not second.tool_calls
    report = Weather.model_validate_json(second.content)
    assert (report.city, report.temperature) == ("Lisbon", 18.0)
    assert "rain" in report.conditions


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            "Tell me a joke about cats. Return the result as a JSON with 'setup' and "
            "'punchline' keys. Return nothing other than JSON.",
            {"setup", "punchline"},
        ),
        ("Describe Ana (34, from Porto) as JSON with keys name, age and city", None),
    ],
)
def test_json_mode_uses_the_keys_the_prompt_names(prompt: str, expected: Any) -> None:
    answer = model.chat({"messages": _user(prompt), "response_format": {"type": "json_object"}})
    data = json.loads(answer.content)
    if expected is None:
        assert data == {"name": "Ana", "age": 34, "city": "Porto"}
    else:
        assert set(data) == expected and all(isinstance(v, str) and v for v in data.values())
    plain = model.chat({"messages": _user("Say hi"), "response_format": {"type": "json_object"}})
    assert json.loads(plain.content) == {"answer": "You said: Say hi"}  # no keys named


_REACT_SYSTEM = (
    "You have access to the following tools:\n"
    "> Tool Name: get_weather\nTool Description: get_weather(city: str) -> str\n"
    "Current weather of a city.\n"
    'Tool Args: {"properties": {"city": {"title": "City", "type": "string"}}, '
    '"required": ["city"], "type": "object"}\n\n'
    "> Tool Name: multiply\nTool Description: Multiply two integers.\n"
    'Tool Args: {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, '
    '"required": ["a", "b"], "type": "object"}\n\n'
    "## Output Format\nThought: ...\nAction: tool name\nAction Input: the input as JSON\n"
)


def test_a_react_prompt_gets_an_action_then_an_answer_from_the_observation() -> None:
    messages = [
        {"role": "system", "content": _REACT_SYSTEM},
        {"role": "user", "content": "What is the weather in Oslo?"},
    ]
    step = model.chat({"messages": messages}).content
    lines = step.splitlines()
    assert lines[0].startswith("Thought: ") and lines[1] == "Action: get_weather"
    assert lines[2] == 'Action Input: {"city": "Oslo"}'
    messages += [
        {"role": "assistant", "content": step},
        {"role": "user", "content": "Observation: Snow, -3 C"},
    ]
    final = model.chat({"messages": messages}).content
    assert final.startswith("Thought: I can answer") and final.endswith("Answer: Snow, -3 C")
    # not a ReAct prompt: an echo as before
    assert model.chat({"messages": messages[1:2]}).content.startswith("You said:")


# ---- the frameworks against the local gateway --------------------------------------------


async def test_llamaindex_react_agent_calls_its_tool(shared_gateway: Any, wallet: Any) -> None:
    called: list[str] = []

    def get_weather(city: str) -> str:
        """Current weather of a city."""
        called.append(city)
        return f"18 C and light rain in {city}"

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    llm = OpenGradient(model=MODEL, private_key=_key(wallet), base_url=shared_gateway.url)
    tools = [FunctionTool.from_defaults(get_weather), FunctionTool.from_defaults(multiply)]
    agent = ReActAgent(tools=tools, llm=llm)
    settled = len(shared_gateway.ledger.entries)
    output = await agent.run("What is the weather in Lisbon?")
    assert called == ["Lisbon"]
    (result,) = output.tool_calls
    assert (result.tool_name, result.tool_kwargs) == ("get_weather", {"city": "Lisbon"})
    assert str(output) == "18 C and light rain in Lisbon"
    assert len(shared_gateway.ledger.entries) - settled == 2  # one paid call per ReAct step


def test_llamaindex_extraction_into_a_pydantic_model(shared_gateway: Any, wallet: Any) -> None:
    llm = OpenGradient(model=MODEL, private_key=_key(wallet), base_url=shared_gateway.url)
    prompt = PromptTemplate("Extract the person: {text}")
    person = llm.structured_predict(Person, prompt, text="Ana is 34 and lives in Porto")
    assert person == Person(name="Ana", age=34, city="Porto")


def test_langchain_provider_strategy_agent_gets_its_structured_response(
    shared_gateway: Any, wallet: Any
) -> None:
    @tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        return f"18 C and light rain in {city}"

    chat = ChatOpenGradient(model=MODEL, private_key=_key(wallet), base_url=shared_gateway.url)
    agent = create_agent(chat, tools=[get_weather], response_format=ProviderStrategy(Weather))
    state = agent.invoke({"messages": [("user", "What is the weather in Lisbon?")]})
    kinds = [type(m).__name__ for m in state["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert state["messages"][1].tool_calls[0]["args"] == {"city": "Lisbon"}
    report = state["structured_response"]
    assert isinstance(report, Weather)
    assert (report.city, report.temperature) == ("Lisbon", 18.0) and "rain" in report.conditions


def test_langchain_extraction_and_json_mode_with_prose_keys(
    shared_gateway: Any, wallet: Any
) -> None:
    chat = ChatOpenGradient(model=MODEL, private_key=_key(wallet), base_url=shared_gateway.url)
    extract = chat.with_structured_output(Person, method="json_schema")
    assert extract.invoke("Ana is 34 and lives in Porto") == Person(
        name="Ana", age=34, city="Porto"
    )
    joke = chat.with_structured_output(method="json_mode").invoke(
        "Tell me a joke about cats. Return the result as a JSON with 'setup' and 'punchline' "
        "keys. Return nothing other than JSON."
    )
    assert set(joke) == {"setup", "punchline"}


@pytest.mark.parametrize(
    "prompt",
    [
        "JSON with keys x" + "and" * 3000 + "!",  # backtracking bait for the listed-keys pattern
        "Return JSON with keys " + "a, " * 20000 + "b",
        "Name is " + "A " * 50000,
        "Ab, " * 20000,
        "value 1 " * 20000,
    ],
    ids=["and-chain", "long-key-list", "capital-run", "many-names", "many-numbers"],
)
def test_hostile_prompts_still_get_json(prompt: str) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "value": {"type": "integer"}},
        "required": ["name", "value"],
    }
    for form in ({"type": "json_object"}, _schema_format(schema)):
        answer = model.chat({"messages": _user(prompt), "response_format": form})
        assert isinstance(json.loads(answer.content), dict)
