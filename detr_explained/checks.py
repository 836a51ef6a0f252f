"""Argument checks shared by the package's modules: whole numbers, and what a value is for an
error message (``book/01_backbone.ipynb`` shows the errors a reader meets)."""
from __future__ import annotations

import numbers
import os
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


# ---- JSON fields (the dataset loader and the converter read the same kinds of files) ----------

def json_kind(value) -> str:
    """What a JSON value is, for a message: 'null', 'the number 5', 'an object', ...
    (``book/07_train_it_yourself.ipynb``, ``book/09_your_own_dataset.ipynb``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {dict: "an object", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def is_json_whole(value) -> bool:
    """A whole JSON number (an int, not a bool) (``book/07_train_it_yourself.ipynb``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def json_whole_number(value, what: str, where: str, minimum: int, maximum: Optional[int], meaning: str) -> int:
    """``value`` if it is a whole JSON number in [minimum, maximum] (no maximum if None); otherwise
    a ValueError that says ``where`` it is, ``what`` it is and what it ``meaning``s, with a hint for
    a number written as a string or as 3.0 (``book/07_train_it_yourself.ipynb``,
    ``book/09_your_own_dataset.ipynb``)."""
    if not is_json_whole(value):
        hint = ""
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            hint = f" (write {value.strip()} without quotes)"
        elif isinstance(value, float) and value.is_integer():
            hint = f" (write {int(value)}, not {value!r})"
        raise ValueError(f"{where}: {what} is {json_kind(value)}; give a whole number{hint}: {meaning}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"{where}: {what} is {value}; give a whole number {bounds}: {meaning}")
    return value


def path_argument(value, name: str) -> str:
    """``value`` as a str path if it is a non-empty str or os.PathLike; else a TypeError or
    ValueError naming ``name`` (``book/07_train_it_yourself.ipynb``, ``book/09_your_own_dataset.ipynb``)."""
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (a str or pathlib.Path), got {value!r}")
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a path (a str or pathlib.Path), got {value!r}")
    if path == "":
        raise ValueError(f"{name} is empty: pass the path of a folder or file")
    return path
