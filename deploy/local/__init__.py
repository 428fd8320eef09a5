"""`make run`: the whole suite on one machine with embedded NATS, Redis and SQLite."""
