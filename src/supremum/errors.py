"""Errors a user can cause: one line, a hint, exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user. The CLI prints it as one line and exits with code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
