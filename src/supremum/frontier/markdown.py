"""Markdown pieces shared by the report's sections."""

from __future__ import annotations


def md_cell(text: str, width: int = 120) -> str:
    """Text for a Markdown table cell: one line, pipes escaped, cut at `width` characters."""
    one = " ".join(text.split()).replace("|", "\\|")
    return one if len(one) <= width else one[: width - 1] + "…"
