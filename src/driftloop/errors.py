"""Errors a user can hit. Each carries one line that says what is wrong and how to fix it.

The CLI prints ``str(error)`` and exits non-zero; flows let them fail the run with that
message. Anything else escaping is a bug and keeps its traceback.
"""


from driftloop.redaction import redact


class DriftloopError(Exception):
    """Base for every error whose message is meant for the user, not the developer. Its message is
    redacted when it is made (``driftloop.redaction``): wherever it goes next (a Prefect state, a log,
    an alert), no password goes with it."""

    exit_code = 2

    def __init__(self, message: str = "", *args):
        super().__init__(redact(str(message)), *args)


class ConfigError(DriftloopError):
    pass


class DataError(DriftloopError):
    """A batch or label file that cannot be read or does not fit the schema."""


class BatchRejected(DriftloopError):
    """A batch failed critical expectations and was quarantined."""

    exit_code = 3


class RegistryError(DriftloopError):
    """Unknown model, alias or version, or a request MLflow refused."""


class RegistryUnavailable(RegistryError):
    """MLflow could not be reached; worth retrying."""


class LedgerDamaged(DriftloopError):
    """The ledger's database (and the history beside it) cannot be read: restore it, do not retry."""


class LedgerUnavailable(DriftloopError):
    """The ledger's database server could not be reached; worth retrying."""


class ClusterUnavailable(DriftloopError):
    """The Dask scheduler named by execution.dask_address could not be reached."""
