"""How request bodies that carry a RunConfig, or dotted keys of one, are documented.

The services validate those parts themselves, so that every error names its dotted field; the
OpenAPI schema still says what they take: RunConfig's own schema, and the dotted keys there are.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, GetJsonSchemaHandler, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from trainer.config import RunConfig, dotted_keys


class DocumentedAs:
    """Validates as the annotated type (a plain dict) and is documented as ``model``."""

    def __init__(self, model: type[BaseModel]):
        self.model = model

    def __get_pydantic_json_schema__(
        self, _schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(self.model.__pydantic_core_schema__)


RunConfigBody = Annotated[dict[str, Any], DocumentedAs(RunConfig)]


def overrides_schema(keys: list[str]) -> WithJsonSchema:
    return WithJsonSchema({"type": "object", "propertyNames": {"enum": keys}, "additionalProperties": True})


CONFIG_KEYS = dotted_keys()
Overrides = Annotated[dict[str, Any], overrides_schema(CONFIG_KEYS)]
