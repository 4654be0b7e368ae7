"""Supervisors' use cases on conversations (splitting and merging threads)."""
