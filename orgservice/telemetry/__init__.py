"""Observability: logs, metrics and traces, one module each, wired in server.py."""
