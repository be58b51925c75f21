"""Logging, metrics and tracing set-up for the server."""
