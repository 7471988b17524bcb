"""Code that runs inside the Spark applications of the stages: the stage runner, features,
the model and its trainer, metrics and the gate, validation and drift, ingest's row checks,
personal-data protection, model integrity, the registry and the report. Shipped to Spark (with
the shared core above it) as the `--py-files` zip; imports nothing of `retrain.airflow` or
`retrain.tools`.
"""
