"""Compatibility: the original package's module path."""
