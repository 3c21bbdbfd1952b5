"""Adapter components."""
