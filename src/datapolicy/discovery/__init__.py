"""The data map: where a person's data lives in a database, found from its schema (discover)."""
