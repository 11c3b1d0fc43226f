"""Structured output for ``ChatOpenGradient``: a bound model piped into the matching parser.

LangChain's parsers and tool conversion are imported on use, not with the package.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

_RESPONSE_FORMAT_TYPES = ("json_schema", "json_object", "text")


def json_schema_format(schema: Any, strict: bool | None = None) -> dict[str, Any]:
    """An OpenAI ``response_format`` dict: given as one, or built from a pydantic class,
    TypedDict or JSON schema."""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    if isinstance(schema, dict) and schema.get("type") in _RESPONSE_FORMAT_TYPES:
        return schema
    function = convert_to_openai_tool(schema)["function"]
    spec: dict[str, Any] = {"name": function["name"], "schema": function.get("parameters") or {}}
    if function.get("description"):
        spec["description"] = function["description"]
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def structured_runnable(
    model: BaseChatModel, schema: Any, method: str, include_raw: bool, strict: bool | None
) -> Runnable[Any, Any]:
    """``model`` bound for ``method`` and piped into a parser of ``schema``."""
    from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
    from langchain_core.output_parsers.openai_tools import (
        JsonOutputKeyToolsParser,
        PydanticToolsParser,
    )
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from langchain_core.utils.pydantic import is_basemodel_subclass

    if method not in ("function_calling", "json_schema", "json_mode"):
        raise ValueError(
            f"method {method!r} is unknown; use 'function_calling', 'json_schema' or 'json_mode'"
        )
    if schema is None and method != "json_mode":
        raise ValueError(f"method {method!r} needs a schema")
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    trace: dict[str, Any] = {}
    if schema is not None:
        trace["ls_structured_output_format"] = {
            "kwargs": {"method": method, "strict": strict},
            "schema": schema,
        }
    parser: Runnable[Any, Any]
    if method == "function_calling":
        name = convert_to_openai_tool(schema)["function"]["name"]
        bound = model.bind_tools([schema], tool_choice=name, strict=strict, **trace)
        parser = (
            PydanticToolsParser(tools=[schema], first_tool_only=True)
            if is_pydantic
            else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        )
    else:
        response_format = (
            json_schema_format(schema, strict)
            if method == "json_schema"
            else {"type": "json_object"}
        )
        bound = model.bind(response_format=response_format, **trace)
        parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
    if not include_raw:
        return bound | parser
    from langchain_core.runnables import RunnableMap, RunnablePassthrough

    parsed = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=bound) | parsed.with_fallbacks([unparsed], exception_key="parsing_error")
