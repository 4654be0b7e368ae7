"""Full-text search over messages, one job per module:

* `port` — the `SearchIndex` protocol, the indexed `Document` and `for_dialect`;
* `sqlite` — the SQLite adapter (the FTS5 table `message_fts`);
* `postgres` — the PostgreSQL adapter (the `messages.search_document` tsvector, GIN);
* `index` — what of a message is indexed, written in the caller's transaction.

The search language is domain/search_query.py; the conversation list and browser
that use it are services/conversations/. Nothing here knows of HTTP or users.
"""
