from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retrain.spec import Spec, SpecError, load_all_specs, load_spec, load_spec_file, parse_spec
from tests.helpers import toy_spec


def minimal(**changes: object) -> dict:
    data = {
        "name": "toy",
        "registered_model_name": "retrain_toy",
        "schema": {"id": "long", "label": "string", "x": "double", "y": "int"},
        "id_column": "id",
        "label_column": "label",
        "feature_columns": ["x", "y"],
    }
    data.update(changes)
    return data


def test_digits_spec_is_complete():
    spec = load_spec("digits")
    assert spec.name == "digits"
    assert len(spec.feature_columns) == 64
    assert list(spec.schema)[:3] == ["id", "label", "p0"]
    assert spec.model.hidden_layers == (64,)
    assert spec.split.train + spec.split.validation + spec.split.test == pytest.approx(1.0)


def test_defaults_fill_optional_sections():
    spec = parse_spec(minimal(), "toy.yaml")
    assert spec.window_days == 7
    assert spec.gate.metric == "weighted_f1"
    assert spec.landing_path == "landing/toy"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"windw_days": 3}, "unknown key 'windw_days'"),
        ({"model": {"max_iter": "ten"}}, "key 'model.max_iter' must be int, got str 'ten'"),
        ({"model": {"hidden_layers": 5}}, "key 'model.hidden_layers' must be a list"),
        ({"model": {"max_itr": 5}}, "unknown key 'model.max_itr'"),
        ({"window_days": True}, "key 'window_days' must be int"),
        ({"feature_columns": ["x", "label"]}, "names the label 'label'"),
        ({"feature_columns": ["x", "z"]}, "names 'z', which is not a column"),
        (
            {"schema": {"id": "long", "label": "string", "x": "string", "y": "double"}},
            "key 'feature_types.x' is needed: 'x' is a string column, so say categorical or text "
            "or vector",
        ),
        ({"feature_types": {"x": "numerical"}}, "key 'feature_types.x' must be one of numeric,"),
        ({"feature_types": {"x": "text"}}, "key 'feature_types.x' cannot be text: a text feature"),
        (
            {"feature_types": {"id": "numeric"}},
            "key 'feature_types.id' is not in 'feature_columns'",
        ),
        ({"text": {"weighting": "bm25"}}, "key 'text.weighting' must be one of tfidf, counts"),
        ({"text": {"ngrams": 9}}, "key 'text.ngrams' must be between 1 and 5"),
        ({"text": {"token_pattern": "[a-"}}, "key 'text.token_pattern' is not a valid regex"),
        (
            {"augment": {"column": "x", "image_shape": [2, 2]}},
            "key 'augment.column' must be a vec",
        ),
        ({"label_column": "target"}, "key 'label_column' is not a column"),
        ({"schema": {"id": "long", "label": "text"}}, "key 'schema.label' has unknown type"),
        ({"split": {"train": 0.9, "validation": 0.1, "test": 0.1}}, "add up to 1"),
        ({"model": {"solver": "sgd"}}, "key 'model.solver' must be one of adam, l-bfgs, gd"),
        ({"source": {"landing_path": "../../etc"}}, "key 'source.landing_path' must be a path"),
        ({"source": {"landing_path": "/root"}}, "key 'source.landing_path' must be a path"),
        ({"source": {"landing_path": "file:///etc"}}, "key 'source.landing_path' must be a"),
        (
            {"source": {"options": {"mode": "DROPMALFORMED"}}},
            "key 'source.options.mode' is not a csv reader option retrain allows",
        ),
        ({"model": {"batch_size": 0}}, "key 'model.batch_size' must be at least 1"),
        ({"model": {"learning_rate": -0.1}}, "key 'model.learning_rate' must be above 0"),
        (
            {"model": {"max_epochs": 20, "patience": 30}},
            "key 'model.patience' must be between 1 and model.max_epochs (20)",
        ),
        ({"model": {"weight_decay": -1}}, "key 'model.weight_decay' must be 0 or more"),
        ({"model": {"class_weights": "auto"}}, "key 'model.class_weights' must be one of"),
        ({"name": "../etc"}, "key 'name' must match"),
    ],
)
def test_bad_specs_name_file_and_key(changes, message):
    with pytest.raises(SpecError) as err:
        parse_spec(minimal(**changes), "specs/toy.yaml")
    assert "specs/toy.yaml" in str(err.value)
    assert message in str(err.value)


def test_missing_required_key():
    data = minimal()
    del data["id_column"]
    with pytest.raises(SpecError, match="missing required key 'id_column'"):
        parse_spec(data, "toy.yaml")


def test_overrides_are_typed_and_checked():
    spec = parse_spec(minimal(), "toy.yaml")
    changed = spec.with_overrides({"model.max_epochs": "5", "model.hidden_layers": "[8, 4]"})
    assert changed.model.max_epochs == 5
    assert changed.model.hidden_layers == (8, 4)
    assert changed.fingerprint() != spec.fingerprint()
    assert spec.model.max_epochs == 200  # the original is frozen and unchanged
    with pytest.raises(SpecError, match="unknown override key 'model.nope'"):
        spec.with_overrides({"model.nope": "1"})
    with pytest.raises(SpecError, match="unknown override key 'name'"):
        spec.with_overrides({"name": "other"})
    with pytest.raises(SpecError, match="must be int"):
        spec.with_overrides({"model.max_epochs": "many"})
    # A text key keeps its text: YAML would read "off" as False.
    assert spec.with_overrides({"gate.mode": "off"}).gate.mode == "off"
    moves = spec.with_overrides({"gate.backfill_moves_champion": "true"})
    assert moves.gate.backfill_moves_champion is True


def test_a_key_the_solver_ignores_is_refused_by_name():
    """adam (the default) never reads max_iter: a spec or a run that sets it would train the
    full model and never learn why; each such key is named, with what it applies to."""
    with pytest.raises(SpecError) as err:
        parse_spec(minimal(model={"max_iter": 50, "step_size": 0.1}), "toy.yaml")
    assert str(err.value) == (
        "toy.yaml: key 'model.max_iter' applies to solver l-bfgs or gd, not to this spec's adam: "
        "remove it, or set model.solver; key 'model.step_size' applies to solver gd, not to "
        "this spec's adam: remove it, or set model.solver"
    )
    lbfgs = parse_spec(minimal(model={"solver": "l-bfgs", "max_iter": 50}), "toy.yaml")
    assert lbfgs.model.max_iter == 50
    with pytest.raises(SpecError, match="key 'model.patience' applies to solver adam, not to"):
        lbfgs.with_overrides({"model.patience": "3"})
    adam = parse_spec(minimal(), "toy.yaml")
    with pytest.raises(SpecError, match="key 'model.max_iter' applies to solver l-bfgs or gd"):
        adam.with_overrides({"model.max_iter": "1"})  # --param model.max_iter=1


def test_the_default_patience_follows_a_smaller_max_epochs():
    quick = parse_spec(minimal(), "toy.yaml").with_overrides({"model.max_epochs": "1"})
    assert (quick.model.max_epochs, quick.model.patience) == (1, 1)
    assert parse_spec(minimal(model={"max_epochs": 4}), "toy.yaml").model.patience == 4
    assert parse_spec(minimal(), "toy.yaml").model.patience == 10
    digits = load_spec("digits").with_overrides({"model.max_epochs": "1"})  # a quick try
    assert (digits.model.max_epochs, digits.model.patience) == (1, 1)
    with pytest.raises(SpecError, match=r"model.patience' must be between 1 and model.max_ep"):
        parse_spec(minimal(model={"max_epochs": 4, "patience": 5}), "toy.yaml")  # said: wrong


def test_fingerprint_ignores_file_location():
    a = parse_spec(minimal(), "a/toy.yaml")
    b = parse_spec(minimal(), "b/toy.yaml")
    assert a == b
    assert a.fingerprint() == b.fingerprint()
    assert isinstance(a, Spec)


def test_extra_spec_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(minimal()))
    monkeypatch.setenv("RETRAIN_DATASETS_PATH", str(tmp_path))
    assert set(load_all_specs()) == {"digits", "penguins", "support_tickets", "toy"}
    assert load_spec("toy").file == str(tmp_path / "toy.yaml")
    with pytest.raises(SpecError, match="no dataset spec named 'nope'"):
        load_spec("nope")


def test_file_name_must_match_dataset_name(tmp_path: Path):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    with pytest.raises(SpecError, match="file is named other.yaml"):
        load_spec_file(path)


def test_invalid_yaml(tmp_path: Path):
    path = tmp_path / "toy.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec_file(path)


def test_reader_option_keys_are_matched_as_spark_matches_them():
    spec = toy_spec(source={"format": "csv", "options": {"Header": "true", "SEP": ";"}})
    assert spec.source.options == {"header": "true", "sep": ";"}
    assert toy_spec(source={"landing_path": "s3a://feeds/toy"}).landing_path == "s3a://feeds/toy"
