"""Tool functions with evaluated annotations (no ``from __future__ import annotations``) and
old-style ``typing`` aliases; test_tools.py (which has the future import) defines twins."""

# ruff: noqa: UP006, UP007, UP035, UP045  (the typing aliases are what is being tested)

import enum
from dataclasses import dataclass, field
from typing import Annotated, Dict, List, Optional, Tuple, Union


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclass
class Item:
    """One line of an order."""

    sku: str
    qty: Annotated[int, "How many"] = 1


@dataclass
class Order:
    items: List[Item]
    notes: Dict[str, str] = field(default_factory=dict)


def place_order(order: Order, color: Optional[Color] = None, size: Tuple[int, int] = (1, 1),
                code: Union[int, str] = 0) -> str:
    """Place an order.

    Args:
        order: What to order.
        color: Wrapping colour.
    """
    return f"{len(order.items)} {color} {size} {code}"


def unresolvable_return(x: int) -> "NotDefinedAnywhere":  # type: ignore[name-defined]  # noqa: F821
    """The return annotation cannot be resolved; the parameters can."""
    return x


def unresolvable_param(x: "AlsoNotDefined") -> None:  # type: ignore[name-defined]  # noqa: F821
    """A parameter annotation that cannot be resolved."""
