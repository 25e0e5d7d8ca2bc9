"""Query limits (CONTRACT §7) as graphql-core validation rules, so an over-limit query never executes.

Depth and aliases are small rules of our own (graphql-core ships none); cost is ariadne's cost validator with a
cost map generated from the schema: every field that returns nodes costs 1 per node it may return, multiplied
by the `first` of every list around it. The ≤ 1,000 nodes per response limit is counted while resolving.
"""

from __future__ import annotations

from ariadne.validation.query_cost import CostValidator
from graphql import GraphQLError
from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode, OperationDefinitionNode
from graphql.validation import ValidationContext, ValidationRule

MAX_DEPTH = 10
MAX_ALIASES = 100
MAX_COST = 20_000
MAX_NODES = 1_000


def limit_error(message: str, **extra) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "LIMIT", **extra})


class DepthLimit(ValidationRule):
    """Fields nested deeper than MAX_DEPTH (fragments followed) are refused."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_):
        depth = self._depth(node.selection_set, 0, set())
        if depth > MAX_DEPTH:
            self.report_error(limit_error(f"query depth {depth} exceeds the limit of {MAX_DEPTH}",
                                          limit="depth", maximum=MAX_DEPTH))

    def _depth(self, selection_set, level: int, fragments: set[str]) -> int:
        if selection_set is None or level > MAX_DEPTH:
            return level
        deepest = level
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                deepest = max(deepest, self._depth(sel.selection_set, level + 1, fragments))
            elif isinstance(sel, InlineFragmentNode):
                deepest = max(deepest, self._depth(sel.selection_set, level, fragments))
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                fragment = self.context.get_fragment(name)
                if fragment is not None and name not in fragments:
                    deepest = max(deepest, self._depth(fragment.selection_set, level, fragments | {name}))
        return deepest


class AliasLimit(ValidationRule):
    def __init__(self, context: ValidationContext):
        super().__init__(context)
        self.aliases = 0

    def enter_field(self, node: FieldNode, *_):
        if node.alias is not None:
            self.aliases += 1

    def leave_document(self, *_):
        if self.aliases > MAX_ALIASES:
            self.report_error(limit_error(f"{self.aliases} aliases exceed the limit of {MAX_ALIASES}",
                                          limit="aliases", maximum=MAX_ALIASES))


class _Cost(CostValidator):
    def get_cost_exceeded_error(self) -> GraphQLError:
        return limit_error(f"query cost {self.cost} exceeds the limit of {self.maximum_cost} (each node a field "
                           "may return costs 1, times the `first` of the lists around it)",
                           limit="cost", cost=self.cost, maximum=self.maximum_cost)


def cost_rule(cost_map: dict, variables: dict | None) -> type[ValidationRule]:
    class CostLimit(_Cost):
        def __init__(self, context: ValidationContext):
            super().__init__(context, maximum_cost=MAX_COST, variables=variables, cost_map=cost_map)

    return CostLimit
