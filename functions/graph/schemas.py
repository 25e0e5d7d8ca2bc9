"""Request and response models of the graph's HTTP side (documentation: a GraphQL body is checked by the
GraphQL service itself, so a bad one is a GraphQL error with BAD_USER_INPUT, never a REST 400)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class GraphQLRequest(BaseModel):
    """GraphQL over HTTP."""

    query: str
    variables: dict[str, Any] | None = None
    operationName: str | None = None  # noqa: N815 - the GraphQL-over-HTTP field name


class GraphQLErrorExtensions(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: Literal["BAD_USER_INPUT", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "CONFLICT", "LIMIT"]


class GraphQLErrorOut(BaseModel):
    message: str
    extensions: GraphQLErrorExtensions
    path: list[str | int] | None = None


class GraphQLResponse(BaseModel):
    """The result; every error carries extensions.code."""

    data: dict[str, Any] | None
    errors: list[GraphQLErrorOut] | None = None
