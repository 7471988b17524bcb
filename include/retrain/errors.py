"""The failures two processes agree on: what a stage raises, how its process exits, and which
exits Airflow retries. A leaf module: it imports nothing of ours, so any module can raise these
without importing the stage runner.
"""

from __future__ import annotations

# How a stage's process ends; the DAG does not retry the deterministic failures.
EXIT_FAILED, EXIT_BAD_SPEC, EXIT_DATA_REJECTED = 1, 2, 3
NO_RETRY_EXITS = (EXIT_BAD_SPEC, EXIT_DATA_REJECTED)


class RetrainError(RuntimeError):
    """An expected failure of a stage, explained for a person (no stack trace needed)."""


class DataRejected(RetrainError):
    """The day's data cannot be used as it is: a retry would only fail the same way."""


class SpecError(ValueError):
    """A dataset spec that cannot be used, with the file and key at fault."""
