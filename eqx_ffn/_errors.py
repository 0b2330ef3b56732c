"""Error messages shared across the package."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def unknown_name(argument: str, value: Any, valid: Iterable[str], hint: str = "") -> ValueError:
    """`ValueError("Unknown <argument> <value>. Valid names are 'a', 'b'<hint>.")`."""
    names = ", ".join(repr(n) for n in valid)
    return ValueError(f"Unknown {argument} {value!r}. Valid names are {names}{hint}.")
