"""What the package's commands share: one clear message and exit status 2 for a user's mistake.

Explained in ``book/07_train_it_yourself.ipynb``. A command (``python -m detr_explained.train``,
``.evaluate``, ``.synthetic``) checks its options where they enter; anything wrong with what the
user gave (an option out of range, a dataset or checkpoint that does not fit) ends the command
with one line, ``error: ...``, that says what was wrong and what to do, and exit status 2, the
status argparse uses for a bad option. ``--traceback`` shows the Python traceback as well, for
reporting a bug.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, Optional, Sequence

# The errors that describe bad input (CheckpointError and the dataset checks raise ValueError;
# a missing file FileNotFoundError; a full disk OSError). Anything else (a TypeError, KeyError,
# IndexError ...) is a bug of ours and keeps its traceback.
USER_ERRORS = (ValueError, OSError)

EXIT_USAGE = 2
# Exit status after Ctrl-C: 128 + SIGINT, as a shell reports it.
EXIT_INTERRUPTED = 130


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``PROG: error: ...``, and a pointer to
    ``--help``, instead of the whole usage block (``book/07_train_it_yourself.ipynb``)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see {self.prog} --help)\n")


class UsageError(ValueError):
    """A command's option or input is wrong; the message says what to pass instead
    (``book/07_train_it_yourself.ipynb``)."""


def add_traceback_option(parser: argparse.ArgumentParser) -> None:
    """``--traceback``: show the whole traceback of an error, not only its message
    (``book/07_train_it_yourself.ipynb``)."""
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, also print the Python traceback (for a bug report)")


def run_command(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], object],
                argv: Optional[Sequence[str]] = None) -> object:
    """Parse ``argv`` and run ``body(args)``; a user error becomes ``error: ...`` on stderr and
    exit status 2 (``book/07_train_it_yourself.ipynb``)."""
    args = parser.parse_args(argv)
    try:
        return body(args)
    except KeyboardInterrupt:
        if getattr(args, "traceback", False):
            raise
        parser.exit(EXIT_INTERRUPTED, f"{parser.prog}: interrupted (Ctrl-C)\n")
    except USER_ERRORS as err:
        if getattr(args, "traceback", False):
            raise
        message = str(err)
        if isinstance(err, OSError) and err.filename and str(err.filename) not in message:
            message = f"{err.filename}: {message}"
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n"
                                "(run again with --traceback to see where it happened)\n")


# ----------------------------------------------------------------------------------------------
# argparse types: a bad number is refused when the options are parsed, with its name and range
# ----------------------------------------------------------------------------------------------

def _bounded(kind: type, accepts, problem: str, name: str, doc: str):
    """An argparse type: ``kind(text)``, refused with "TEXT PROBLEM" unless ``accepts(value)``."""
    def parse(text: str):
        value = _number(text, kind)
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"{text} {problem}")
        return value
    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = f"An argparse type: {doc} (``book/07_train_it_yourself.ipynb``)."
    return parse


positive_int = _bounded(int, lambda v: v >= 1, "is not a positive whole number (give 1 or more)",
                        "positive_int", "an integer of at least 1")
non_negative_int = _bounded(int, lambda v: v >= 0, "is negative (give 0 or more)",
                            "non_negative_int", "an integer of at least 0")
positive_float = _bounded(float, lambda v: v > 0, "is not a positive number",
                          "positive_float", "a finite number above 0")
non_negative_float = _bounded(float, lambda v: v >= 0, "is negative (give 0 or more)",
                              "non_negative_float", "a finite number of at least 0")
probability = _bounded(float, lambda v: 0 <= v <= 1, "is not a probability: give a number from 0 to 1",
                       "probability", "a number from 0 to 1")
# A softmax probability is never above 1, so a threshold of 1 or more would keep no query.
score_threshold = _bounded(float, lambda v: 0 <= v < 1,
                           "is not a score threshold: give a number from 0 up to (not including) 1, e.g. 0.85",
                           "score_threshold", "a class-score threshold, from 0 up to but not including 1")


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def print_error(message: str) -> None:
    """One line on stderr, flushed (``book/07_train_it_yourself.ipynb``)."""
    print(message, file=sys.stderr, flush=True)


__all__ = ["USER_ERRORS", "CommandParser", "UsageError", "add_traceback_option", "run_command", "positive_int",
           "non_negative_int", "positive_float", "non_negative_float", "probability",
           "score_threshold", "print_error"]
