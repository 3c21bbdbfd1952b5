"""Test tooling for Agent Lightning and its plugins.

- :mod:`agentlightning_core.testing.pytest_plugin` (loaded by pytest through the ``pytest11``
  entry point): fixtures such as ``agl_register_plugin``.
- Conformance suites, one module per component kind, to subclass in an implementation's tests.
"""
