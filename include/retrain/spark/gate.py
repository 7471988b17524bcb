"""The gate's rules: when a candidate is published, and when the champion may move to it.

Evaluate asks `decide` (the verdict with the gate's mode applied); publish asks
`hold_back_reason` before moving the `champion` alias. Both are pure: numbers and tags in,
a decision and a reason a person can read out.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from retrain.runs import DRY_RUN, PUBLISH, REJECT
from retrain.spec import Gate


def verdict(  # noqa: PLR0911 - one return per gate rule reads best
    gate: Gate,
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    interval: dict[str, Any] | None,
) -> tuple[str, str]:
    """(publish | reject, reason) by the gate's rules, before its mode is applied."""
    metric = gate.metric
    score, rows = candidate[metric], candidate["rows"]
    if rows < gate.min_test_rows:
        return REJECT, f"only {rows} test rows (< min_test_rows {gate.min_test_rows})"
    if score < gate.min_f1:
        return REJECT, f"candidate {metric} {score:.4f} is below the floor {gate.min_f1:.4f}"
    if champion is None:
        return PUBLISH, f"first model: {metric} {score:.4f} >= floor {gate.min_f1:.4f}"
    best = champion[metric]
    if score < best - gate.max_regression:
        return REJECT, (
            f"candidate {metric} {score:.4f} is below the champion's {best:.4f} "
            f"(tolerance {gate.max_regression:.4f})"
        )
    if interval is not None:
        ci = (
            f"{metric} {score - best:+.4f} vs champion, {interval['confidence']:.0%} CI "
            f"[{interval['low']:+.4f}, {interval['high']:+.4f}]"
        )
        if interval["low"] <= gate.min_improvement:
            return REJECT, f"not better than the champion beyond noise: {ci}"
        return PUBLISH, f"better than the champion beyond noise: {ci}"
    return PUBLISH, f"candidate {metric} {score:.4f} >= champion {best:.4f}"


def decide(
    gate: Gate,
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    interval: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """(publish | reject | dry_run, reason): the verdict with the gate's mode applied."""
    outcome, reason = verdict(gate, candidate, champion, interval)
    if gate.mode == "off":
        return PUBLISH, f"gate off (it would {outcome}: {reason})"
    if gate.mode == "dry_run":
        return DRY_RUN, f"dry run, nothing published (the gate would {outcome}: {reason})"
    return outcome, reason


def hold_back_reason(
    gate: Gate, run_type: str, run_date: date, champion: Any | None
) -> str | None:
    """Why a `publish` decision must leave the champion where it is, if it must: a backfill
    (unless `gate.backfill_moves_champion`), or a champion trained on newer data (unless
    `gate.allow_older_champion`)."""
    if run_type == "backfill" and not gate.backfill_moves_champion:
        return "a backfill registers its model but leaves the champion"
    newest = champion.tags.get("run_date") if champion is not None else None
    if newest and newest > run_date.isoformat() and not gate.allow_older_champion:
        return (
            f"the champion (version {champion.version}) was trained on data up to {newest}, "
            f"newer than this run's {run_date}; gate.allow_older_champion allows it"
        )
    return None
