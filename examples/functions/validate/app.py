"""Validate an order with pydantic; the compiled pydantic-core must load on the target."""

from importlib.metadata import version

from pydantic import BaseModel, ValidationError


class Order(BaseModel):
    item: str
    quantity: int


def handler(event, context):
    try:
        order = Order.model_validate(event)
    except ValidationError as exc:
        return {"valid": False, "errors": exc.error_count()}
    return {
        "valid": True,
        "order": order.model_dump(),
        "pydantic": version("pydantic"),
        "pydantic_core": version("pydantic-core"),
    }
