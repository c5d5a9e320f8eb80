"""JSON numbers as strict models take them."""

from typing import Any


def integral_numbers(data: Any) -> Any:
    """An object's values with integral floats made ints: JSON Schema counts 12.0 as an integer, so an int
    field takes it, while strict mode still refuses 12.5 and "12" (and a float field takes 12 anyway)."""
    if isinstance(data, dict):
        return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in data.items()}
    return data
