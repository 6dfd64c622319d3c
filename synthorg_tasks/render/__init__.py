"""Rendering of compose.yml and nats.conf, and their ordered write."""
