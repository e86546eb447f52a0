"""The test suite, a package so that pytest and `from tests.conftest import ...` share one conftest module."""
