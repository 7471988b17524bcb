"""Code that runs in Airflow: the DAG factory (parse time), its operators and template macros,
the run notifier, the dataset claim, and the local Airflow services. Never shipped to Spark;
imports nothing of `retrain.spark`.
"""


def dag_ids(dataset: str) -> tuple[str, str]:
    """The DAGs of a dataset: `retrain_<dataset>` (training) and `score_<dataset>` (scoring)."""
    return f"retrain_{dataset}", f"score_{dataset}"
