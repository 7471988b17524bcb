# retrain: `make run` (demo end to end) and `make test` (the whole suite). Both set up .venv.
# `make bench` measures retrain against the machine and the usual alternatives (bench/).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.bench-installed

.PHONY: run test bench lint format airflow mlflow clean check-env

run: $(INSTALLED)
	$(BIN)/retrain demo-data
	$(BIN)/retrain run digits --latest 2
	@$(BIN)/retrain status digits

# The tests run every bench case at tiny sizes (tests/test_bench.py): they need its packages.
test: $(BENCH_INSTALLED)
	$(BIN)/pytest

# Side-by-side measurements (bench/run.py); PyTorch is installed for it only, never at runtime.
bench: $(BENCH_INSTALLED)
	$(BIN)/python -m bench.run

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

airflow: $(INSTALLED)
	$(BIN)/retrain serve-airflow

mlflow: $(INSTALLED)
	$(BIN)/retrain mlflow-ui

clean:
	rm -rf $(VENV) .retrain

check-env:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "retrain needs Python 3.11, but '$(PYTHON)' is not on PATH: install Python 3.11 or run make PYTHON=/path/to/python3.11."; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "retrain needs Python 3.11, but '$(PYTHON)' is $$($(PYTHON) -V 2>&1): run make PYTHON=/path/to/python3.11."; exit 1; }
	@command -v java >/dev/null 2>&1 || { echo "retrain needs Java 17 or newer for Spark 4, and no 'java' is on PATH: install a JDK 17+ (e.g. openjdk-17-jdk-headless)."; exit 1; }
	@v=$$(java -XshowSettings:properties -version 2>&1 | sed -n 's/.*java.specification.version = //p'); \
	  [ "$${v%%.*}" -ge 17 ] 2>/dev/null || { echo "retrain needs Java 17 or newer for Spark 4, but 'java' is version $$v: install a JDK 17+ and put it first on PATH."; exit 1; }

$(BENCH_INSTALLED): $(INSTALLED) bench/requirements.txt bench/datasets.txt
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r bench/datasets.txt
	@touch $(BENCH_INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml | check-env
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(INSTALLED)
