"""Test tooling for Agent Lightning and its plugins.

- :mod:`agentlightning_core.testing.pytest_plugin` (loaded by pytest through the ``pytest11``
  entry point): fixtures such as ``agl_register_plugin``.
- Conformance suites, one module per component kind, to subclass in an implementation's tests
  (their base, :mod:`agentlightning_core.testing.conformance`, refuses redefined tests).

Nothing is imported here (the modules pull in pytest and test servers): import the module
you need.
"""

__all__: list[str] = []
