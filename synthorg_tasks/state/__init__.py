"""Persistent state of an install: paths, config.json, the lock and secrets."""
