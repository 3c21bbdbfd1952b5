"""Runner components."""
