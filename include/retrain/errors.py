"""The failures two processes agree on: what a stage raises, how its process exits, and which
exits Airflow retries. A leaf module: it imports nothing of ours, so any module can raise these
without importing the stage runner.
"""

from __future__ import annotations

# How our processes end, a stage's and the `retrain` command's alike (docs/cli.md).
EXIT_FAILED = 1  # a failure a retry may mend; for `retrain run`, a date whose run failed
EXIT_USAGE = 2  # bad arguments (argparse's own code)
EXIT_BAD_SPEC = 3
EXIT_DATA_REJECTED = 4
EXIT_UNAVAILABLE = 5  # a service did not answer (MLflow) or is taken (a port)
# The DAG does not retry the deterministic failures.
NO_RETRY_EXITS = (EXIT_USAGE, EXIT_BAD_SPEC, EXIT_DATA_REJECTED)


class RetrainError(RuntimeError):
    """An expected failure of a stage, explained for a person (no stack trace needed)."""


class DataRejected(RetrainError):
    """The day's data cannot be used as it is: a retry would only fail the same way."""


class Unavailable(RetrainError):
    """A service the pipeline needs did not answer or is taken: later may work."""


class SpecError(ValueError):
    """A dataset spec that cannot be used, with the file and key at fault."""


def exit_code_of(err: BaseException) -> int:
    """The exit code a process of ours ends with after `err` (an error may carry its own)."""
    if isinstance(code := getattr(err, "exit_code", None), int):
        return code
    for kind, code in ((SpecError, EXIT_BAD_SPEC), (DataRejected, EXIT_DATA_REJECTED),
                       (Unavailable, EXIT_UNAVAILABLE)):  # fmt: skip
        if isinstance(err, kind):
            return code
    return EXIT_FAILED
