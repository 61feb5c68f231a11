"""The one user-facing error type.

Raised at the boundary where bad input is first seen (file, line, key) and caught once in `apps/cli/__init__.py`,
which prints it as a single line and exits with code 2, without a traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import sys
from collections.abc import Iterable, Iterator

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user: the message names the file / line / key and what to do."""


def closest(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix for a misspelt key or name, or '' when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): what a one-line
    error quotes of a library's failure."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def notice(message: str) -> None:
    """One line on stderr for something the user should know that is not an error (a repaired
    log line, a checkpoint set aside)."""
    print(f"ja-adapt: {message}", file=sys.stderr)


@contextlib.contextmanager
def disk_full_is_user_error(what: str, then: str) -> Iterator[None]:
    """A full disk (or quota) while writing `what` becomes a UserError saying `then` (what to do
    once there is space); other OS errors pass through."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UserError(f"{what}: disk full ({e.filename or 'while writing'}); free space, then {then}") from None
