"""Code that runs in Airflow: the DAG factory (parse time), its operators and template macros,
the run notifier, the dataset claim, and the local Airflow services. Never shipped to Spark;
imports nothing of `retrain.spark`.
"""
