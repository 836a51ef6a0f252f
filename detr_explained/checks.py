"""Argument checks shared by the package's modules: whole numbers, and what a value is for an
error message (``book/01_backbone.ipynb`` shows the errors a reader meets)."""
from __future__ import annotations

import numbers
from typing import Optional

import torch


def whole_number(value, name: str, minimum: int = 1, meaning: Optional[str] = None) -> int:
    """``value`` as an int if it is a whole number (not a bool) of at least ``minimum``; else a
    TypeError or ValueError naming ``name`` and, if given, what it ``meaning``s
    (``book/01_backbone.ipynb``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        what = f" ({meaning})" if meaning else ""
        raise TypeError(f"{name} must be a whole number{what}, got {type(value).__name__} {value!r}")
    if value < minimum:
        if meaning:
            raise ValueError(f"{name} is {value}; give {meaning}")
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def describe(value) -> str:
    """A tensor's shape and dtype, or the type of anything else, for an error message
    (``book/01_backbone.ipynb``)."""
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {value.dtype}"
    return type(value).__name__
