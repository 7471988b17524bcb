"""Per dataset spec (include/datasets, RETRAIN_DATASETS_PATH): the DAG `retrain_<dataset>`, and
`score_<dataset>`, which scores each day with the champion after every publish.

Airflow's safe-mode parser only reads files that mention "airflow" and "dag", as this one does.

Adding a dataset is adding a spec and its expectation suite; this file only wires.
"""

from __future__ import annotations

from retrain.airflow.dag_factory import BrokenSpecs, build_dag, build_score_dag
from retrain.spec import load_all_specs

_broken: dict[str, str] = {}
for _spec in load_all_specs(_broken).values():
    for _dag in (build_dag(_spec), build_score_dag(_spec)):
        globals()[_dag.dag_id] = _dag
if _broken:  # an import error of this file in the UI; every other dataset's DAGs still load
    retrain_broken_specs = BrokenSpecs(_broken)
