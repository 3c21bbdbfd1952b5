"""Tracer components."""
