"""Algorithm components."""
