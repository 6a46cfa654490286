"""Rung 6: the daemon process and its HTTP API."""
