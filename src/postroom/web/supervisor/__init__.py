"""Supervisor features over HTTP: analytics queries (`analytics.py`)."""
