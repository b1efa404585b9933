"""What a user writes about runs and studies: notes and tags, with their limits."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

# A tag is a word of a small alphabet: it needs no quoting in a filter, a URL or a shell.
TAG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"
MAX_NOTES = 20_000
# Line breaks and tabs belong in Markdown; every other control character (and a lone surrogate) does not.
NOTES_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _notes_printable(value: str) -> str:
    found = NOTES_CONTROL.search(value)
    if found:
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters other than line breaks and tabs ({character} at position {position})",
            {"character": repr(found.group())[1:-1], "position": found.start()},
        )
    return value


def _tag(value: str) -> str:
    if not re.fullmatch(TAG_PATTERN, value):
        raise PydanticCustomError(
            "tag",
            "a tag is 1 to 32 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit: not {value}",
            {"value": repr(value[:40])},
        )
    return value


Tag = Annotated[
    str, StringConstraints(max_length=64), AfterValidator(_tag), Field(json_schema_extra={"pattern": TAG_PATTERN})
]
Notes = Annotated[str, StringConstraints(max_length=MAX_NOTES), AfterValidator(_notes_printable)]
