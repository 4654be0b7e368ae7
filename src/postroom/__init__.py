"""Postroom: an open-source email contact center."""

__version__ = "0.1.0"
