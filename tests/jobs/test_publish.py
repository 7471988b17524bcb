"""Publish as MLflow 3 users expect it, read back through MLflow's own client: a LoggedModel
with signature, input example and the integrity manifest; both models' metrics, the gate
metric, the loss per epoch as steps, the report and its figures; `champion` and `challenger`."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.models import Model

from jobs import publish
from retrain.spark import integrity, registry
from tests.helpers import EARLIER, LATER, evaluate_and_publish, toy_spec


def test_a_published_and_a_rejected_model_read_back_through_mlflow(spark, toy_lake, tmp_path):
    published = evaluate_and_publish(spark, toy_lake, EARLIER)
    strict = toy_spec(gate={"min_test_rows": 1, "min_f1": 1.01, "bootstrap_resamples": 0})
    rejected = evaluate_and_publish(spark, strict, LATER)
    client, name = MlflowClient(), toy_lake.registered_model_name
    assert published["evaluate"]["decision"] == "publish"
    assert rejected["evaluate"]["decision"] == "reject"

    champion = client.get_model_version_by_alias(name, registry.CHAMPION)
    challenger = client.get_model_version_by_alias(name, registry.CHALLENGER)
    assert str(champion.version) == published["publish"]["version"] == "1"
    assert str(challenger.version) == rejected["publish"]["version"] == "2"

    # The version is a LoggedModel of its run, with the lineage tags on both.
    logged = mlflow.get_logged_model(registry.logged_model_id(champion))
    assert logged.model_id == published["publish"]["model_id"]
    assert logged.source_run_id == champion.run_id
    assert logged.tags["run_date"] == champion.tags["run_date"] == EARLIER.isoformat()
    info = mlflow.models.get_model_info(f"models:/{logged.model_id}")
    inputs = {spec.name: (spec.type.name, spec.required) for spec in info.signature.inputs.inputs}
    assert inputs == {"x": ("double", False), "y": ("double", False)}  # imputed when missing
    assert [o.name for o in info.signature.outputs.inputs] == ["prediction"]
    folder = mlflow.artifacts.download_artifacts(
        f"models:/{logged.model_id}", dst_path=tmp_path / "download"
    )
    example = Model.load(folder).load_input_example(folder)
    assert list(example.columns) == ["x", "y"] and len(example) == publish.EXAMPLE_ROWS
    assert integrity.verify(Path(folder), "the logged model") > 5

    # The run: both models' metrics, the gate metric, the loss per epoch, report and figures.
    run = client.get_run(challenger.run_id)
    evaluation = rejected["evaluate"]
    assert run.data.metrics["gate_value"] == evaluation["candidate"][evaluation["metric"]]
    assert run.data.metrics["champion_weighted_f1"] == evaluation["champion"]["weighted_f1"]
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    expected = rejected["train"]["loss"]["train_loss"]
    assert [m.step for m in losses] == list(range(1, len(expected) + 1))
    assert [m.value for m in losses] == expected
    checked = client.get_metric_history(run.info.run_id, "validation_loss")
    assert [m.step for m in checked][:2] == [0, 1]  # after 0 epochs (the start), after 1, ...
    assert [m.value for m in checked] == rejected["train"]["loss"]["validation_loss"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/report.json"} <= artifacts
    figures = {p for p in artifacts if p.endswith(".png")}
    assert {"report/confusion_matrix.png", "report/loss_curve.png"} <= figures
    page = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/report/report.html")
    assert "reject" in page
