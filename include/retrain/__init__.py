"""retrain: daily retraining of Spark MLlib neural networks, orchestrated by Airflow 3."""

__version__ = "0.1.0"
