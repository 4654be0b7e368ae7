"""Supervisors' use cases: acting on the backlog and on agents (backlog.py), the
agent board (board.py), splitting and merging threads (threads.py)."""
