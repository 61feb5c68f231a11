"""The one user-facing error type.

Raised at the boundary where bad input is first seen (file, line, key) and caught once in `cli.py`,
which prints it as a single line and exits with code 2, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user: the message names the file / line / key and what to do."""


def closest(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix for a misspelt key or name, or '' when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""
