"""Persistence: SQLite schema, queries, and the batched background writer."""
