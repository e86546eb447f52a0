import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(autouse=True, scope="session")
def prefect_api():
    """One real, temporary Prefect API for every flow test (started once: it takes seconds)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield
