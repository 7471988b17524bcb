-- The Airflow metadata database is POSTGRES_DB; MLflow's backend store gets its own.
CREATE DATABASE mlflow;
