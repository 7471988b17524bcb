"""Public datasets shipped inside installable packages (none generated here), as CSV files a
user would hand to `retrain new-dataset`: an `id` column, the label named `label`, the rest as
the package has them.

| name | package | rows | what |
|---|---|---|---|
| penguins | palmerpenguins | 344 | 3 species; numbers and categories, some missing |
| breast_cancer | scikit-learn | 569 | malignant or benign from 30 cell measurements |
| segment | river (UCI image segmentation) | 2,310 | 7 surface classes from 19 pixel statistics |
| shuttle | river (UCI statlog shuttle) | 49,097 | anomaly or not, 7% anomalies |
| chatterbot | chatterbot-corpus (English) | ~2,900 | the topic of a chat line (short texts) |
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import yaml

NAMES = ("penguins", "breast_cancer", "segment", "shuttle", "chatterbot")
MIN_TOPIC_LINES = 45  # chatterbot topics with fewer distinct lines are left out


def _package_dir(package: str) -> Path:
    """Where a package's files are, without importing it (river pulls in much at import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed: make bench installs it")
    return Path(spec.submodule_search_locations[0])


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins().rename(columns={"species": "label"})


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace(" ", "_"))
    return frame.assign(label=data.target.map(dict(enumerate(data.target_names))))


def _segment() -> pd.DataFrame:
    frame = pd.read_csv(_package_dir("river") / "datasets" / "segment.csv.zip")
    return frame.rename(columns={"category": "label"})


def _shuttle() -> pd.DataFrame:
    frame = pd.read_csv(_package_dir("river") / "datasets" / "shuttle.csv.gz")
    return frame.assign(label=frame.pop("anomaly").map({0: "normal", 1: "anomaly"}))


def _chatterbot() -> pd.DataFrame:
    lines = []
    for path in sorted((_package_dir("chatterbot_corpus") / "data" / "english").glob("*.yml")):
        conversations = yaml.safe_load(path.read_text()).get("conversations") or []
        # one line each: `new-dataset` does not read CSV values with line breaks yet (issue 16)
        lines += [
            (" ".join(text.split()), path.stem)
            for conversation in conversations
            for text in conversation
            if isinstance(text, str) and text.strip()
        ]
    frame = pd.DataFrame(lines, columns=["text", "label"]).drop_duplicates("text")
    counts = frame["label"].value_counts()
    return frame[frame["label"].isin(counts[counts >= MIN_TOPIC_LINES].index)]


def load(name: str) -> pd.DataFrame:
    """The dataset with a leading `id` column (its row number) and a `label` column."""
    loaders = {"penguins": _penguins, "breast_cancer": _breast_cancer, "segment": _segment,
               "shuttle": _shuttle, "chatterbot": _chatterbot}  # fmt: skip
    frame = loaders[name]().reset_index(drop=True)
    frame.insert(0, "id", range(len(frame)))
    return frame


def write_csv(name: str, folder: Path) -> Path:
    path = folder / f"{name}.csv"
    folder.mkdir(parents=True, exist_ok=True)
    load(name).to_csv(path, index=False)
    return path
