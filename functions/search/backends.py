"""Picks the SearchIndex backend from the settings; apart from index.py (the interface) so that the interface
never imports its backends, which import it (no import loop).
"""

from __future__ import annotations

from functions.search.index import SearchIndex


def make_index(settings) -> SearchIndex:
    """PCLOUD_SEARCH_URL unset → the embedded SQLite FTS5 index under PCLOUD_DATA_DIR/search;
    http(s)://… → a Meilisearch server (key from PCLOUD_SEARCH_API_KEY)."""
    url = settings.search_url
    if not url:
        from functions.search.sqlite import SqliteSearchIndex

        return SqliteSearchIndex(settings.data_dir / "search" / "index.sqlite3")
    from functions.search.meilisearch import MeilisearchSearchIndex

    return MeilisearchSearchIndex(url, api_key=settings.search_api_key, index=settings.search_index_name,
                                  timeout=settings.http_timeout_seconds)
