"""Structured output with LangChain: a pydantic object from a TEE-verified, paid answer.

python examples/langchain_structured_output.py
"""

from pydantic import BaseModel, Field

from langchain_opengradient import ChatOpenGradient

from _local import server_and_wallet


class Booking(BaseModel):
    """A flight booking request."""

    origin: str = Field(description="the city the flight leaves from")
    seats: int = Field(description="how many seats")


with server_and_wallet():
    model = ChatOpenGradient(model="anthropic/claude-sonnet-4-5")
    booking = model.with_structured_output(Booking, include_raw=True).invoke(
        "Book 3 seats from Oslo"
    )
    print(repr(booking["parsed"]))
    print("TEE proof verified:", booking["raw"].response_metadata["tee_proof"]["verified"])
