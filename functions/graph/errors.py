"""Errors the graph reports inside a GraphQL response, each with its `extensions.code` (CONTRACT §7)."""

from __future__ import annotations

from graphql import GraphQLError


class GraphError(Exception):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def graphql(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": self.code, **self.details})


class BadInput(GraphError):
    code = "BAD_USER_INPUT"


class Unauthenticated(GraphError):
    code = "UNAUTHENTICATED"


class Forbidden(GraphError):
    code = "FORBIDDEN"


class NotFound(GraphError):
    code = "NOT_FOUND"


class Conflict(GraphError):
    code = "CONFLICT"


class Limit(GraphError):
    code = "LIMIT"
