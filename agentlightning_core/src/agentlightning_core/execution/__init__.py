"""Execution components."""
