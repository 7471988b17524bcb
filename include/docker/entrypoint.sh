#!/bin/sh
# Every container of the deployment starts here: it writes the Spark settings the cluster shares
# (RPC authentication and AES-GCM encryption) from the environment into a file only this user
# can read, so the secret never appears on a command line, then runs the service's command.
set -eu
if [ -z "${SPARK_AUTH_SECRET:-}" ]; then
  echo "retrain: SPARK_AUTH_SECRET is empty; copy .env.example to .env and fill it in" >&2
  exit 64
fi
mkdir -p "$SPARK_CONF_DIR"
umask 077
cat > "$SPARK_CONF_DIR/spark-defaults.conf" <<CONF
spark.authenticate true
spark.authenticate.secret ${SPARK_AUTH_SECRET}
spark.network.crypto.enabled true
spark.network.crypto.cipher AES/GCM/NoPadding
spark.ui.enabled false
CONF
exec "$@"
