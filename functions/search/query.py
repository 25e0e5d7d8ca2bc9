"""The search query language of CONTRACT §9, parsed once and rendered by each backend.

Words are ANDed; `word*` is a prefix; `"a b"` a phrase; `field:value` (or `field:"a b"`) an exact field value.
Matching is case- and accent-insensitive: `normalize` is what both the index and the query go through.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
_TOKEN_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*):"([^"]*)"?|([A-Za-z_][A-Za-z0-9_]*):(\S+)|"([^"]*)"?|(\S+)')
_WORD_CHARS = re.compile(r"\w", re.UNICODE)


class QueryError(ValueError):
    """The query cannot be searched (empty, too long); the message says why."""


def normalize(text: str) -> str:
    """Case- and accent-folded text with single spaces: `Éclair  Café` → `eclair cafe`."""
    if not text:
        return ""
    if text.isascii():  # the common case, without decomposing character by character
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def words_of(text: str) -> list[str]:
    """The words of a text as the index sees them (letters and digits, folded)."""
    return re.findall(r"\w+", normalize(text).replace("_", " "))


@dataclass(frozen=True)
class Term:
    text: str  # normalized
    prefix: bool = False
    phrase: bool = False


@dataclass(frozen=True)
class Query:
    terms: list[Term] = field(default_factory=list)
    exact: list[tuple[str, str]] = field(default_factory=list)  # (field, normalized value)

    @property
    def empty(self) -> bool:
        return not self.terms and not self.exact


def parse(q: str) -> Query:
    if q is None or not q.strip():
        raise QueryError("q must contain at least one word")
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"q is longer than {MAX_QUERY_CHARS} characters")
    terms: list[Term] = []
    exact: list[tuple[str, str]] = []
    for m in _TOKEN_RE.finditer(q):
        quoted_field, quoted_value, plain_field, plain_value, phrase, word = m.groups()
        if quoted_field is not None:
            exact.append((quoted_field, normalize(quoted_value)))
        elif plain_field is not None:
            exact.append((plain_field, normalize(plain_value)))
        elif phrase is not None:
            words = words_of(phrase)
            if words:
                terms.append(Term(" ".join(words), phrase=len(words) > 1))
        else:
            prefix = word.endswith("*")
            words = words_of(word.rstrip("*"))
            if not words:
                continue
            if len(words) > 1:  # IMG_1.jpg: the words in a row, as the index split them
                terms.append(Term(" ".join(words), prefix=prefix, phrase=True))
            else:
                terms.append(Term(words[0], prefix=prefix))
    if len(terms) + len(exact) > MAX_TERMS:
        raise QueryError(f"q has more than {MAX_TERMS} terms")
    query = Query(terms, exact)
    if query.empty:
        raise QueryError("q must contain at least one word (letters or digits)")
    return query
