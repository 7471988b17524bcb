# The one retrain image: Airflow services, Spark master and workers, and the MLflow server all
# run from it, so the driver, the executors and the cluster share one Python and one Spark
# (pyspark's own `spark-class`, at the version pinned in requirements.txt).
FROM python:3.11.7-slim-bookworm

RUN apt-get update \
    && apt-get install --yes --no-install-recommends openjdk-17-jre-headless libopenblas0-pthread procps tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/retrain
COPY requirements.txt include/docker/requirements-deploy.txt ./
RUN pip install --no-cache-dir -r requirements.txt -r requirements-deploy.txt

COPY pyproject.toml README.md ./
COPY include include
RUN pip install --no-cache-dir --no-deps -e .
COPY dags dags
COPY jobs jobs
COPY expectations expectations
COPY include/docker/entrypoint.sh /usr/local/bin/retrain-entrypoint

RUN useradd --create-home --uid 50000 retrain && mkdir -p /data && chown retrain /data
USER retrain
ENV RETRAIN_PROJECT_DIR=/opt/retrain \
    RETRAIN_HOME=/data/retrain \
    RETRAIN_LAKE=/data/lake \
    AIRFLOW_HOME=/data/airflow \
    SPARK_CONF_DIR=/home/retrain/spark-conf \
    PYSPARK_PYTHON=/usr/local/bin/python

ENTRYPOINT ["tini", "--", "retrain-entrypoint"]
CMD ["retrain", "--help"]
