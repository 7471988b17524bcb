#!/bin/sh
# Every container of the deployment starts here. It refuses secrets that are missing, still the
# placeholder of .env.example, or too short, naming the variable and the command that makes a
# good one (else they fail later and obscurely). Then it writes the Spark settings the cluster
# shares (RPC authentication and AES-GCM encryption) from the environment into a file only this
# user can read, so the secret never appears on a command line, and runs the service's command.
set -eu
HEX='python -c "import secrets; print(secrets.token_hex(32))"'
FERNET='python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
NEWLINE='
'

refuse() {  # variable in .env, what is wrong, the command that makes a good value
  echo "retrain: $1 $2; make one with: $3 and put it in .env as $1=..." >&2
  exit 64
}

require() {  # variable in .env, its value here, the fewest characters, the command
  case "$2" in
    "") refuse "$1" "is empty (copy .env.example to .env and fill it in)" "$4" ;;
    *change-me*) refuse "$1" "is still the placeholder of .env.example" "$4" ;;
    *"$NEWLINE"*) refuse "$1" "holds a line break" "$4" ;;
  esac
  [ "${#2}" -ge "$3" ] || refuse "$1" "holds ${#2} characters, fewer than $3" "$4"
}

require SPARK_AUTH_SECRET "${SPARK_AUTH_SECRET:-}" 32 "$HEX"
require RETRAIN_KEY "${RETRAIN_KEY:-}" 32 "$HEX"
require AIRFLOW_JWT_SECRET "${AIRFLOW__API_AUTH__JWT_SECRET:-}" 32 "$HEX"
require POSTGRES_PASSWORD "${POSTGRES_PASSWORD:-}" 16 "$HEX"
require AIRFLOW_FERNET_KEY "${AIRFLOW__CORE__FERNET_KEY:-}" 44 "$FERNET"
# Airflow takes a comma-separated list while keys rotate (the new one first): each must be one.
printf %s "$AIRFLOW__CORE__FERNET_KEY" | grep -Eqx '[A-Za-z0-9_-]{43}=(,[A-Za-z0-9_-]{43}=)*' \
  || refuse AIRFLOW_FERNET_KEY "is not a Fernet key (44 characters of URL-safe base64)" "$FERNET"

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
