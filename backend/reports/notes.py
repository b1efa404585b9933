"""A run's notes as HTML: CommonMark through markdown-it-py with raw HTML off, so that any tag a user
writes is shown as text, and links only to http(s) (no javascript:, data: or relative URLs)."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt

SAFE_SCHEMES = ("http://", "https://")


@cache
def _markdown() -> MarkdownIt:
    markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    # An image would load from anywhere the notes point: shown as its text instead.
    markdown.disable("image")
    # A link to anything else stays as its text (markdown-it keeps the label, drops the link).
    markdown.validateLink = lambda url: url.strip().lower().startswith(SAFE_SCHEMES)  # type: ignore[method-assign]
    return markdown


def notes_html(notes: str) -> str:
    return _markdown().render(notes) if notes else ""
