"""The numpy network: MLlib's weight layout, exact gradients, Adam that learns."""

from __future__ import annotations

import numpy as np
import pytest

from retrain.spark.network import (
    Adam,
    Network,
    Rows,
    Settings,
    adam_epoch,
    balanced_class_weights,
)


def test_weights_are_in_mllibs_layout():
    net = Network([3, 2, 4])
    flat = np.arange(net.size, dtype=np.float64)
    (w1, b1), (w2, b2) = net.views(flat)
    assert net.size == 3 * 2 + 2 + 2 * 4 + 4
    # MLlib: the (out, in) matrix column-major, i.e. entry (o, i) at i * out + o, then biases
    assert w1[1, 0] == 1 * 2 + 0 and w1[2, 1] == 2 * 2 + 1
    assert list(b1) == [6, 7]
    assert w2[0, 3] == 8 + 3 and list(b2) == [16, 17, 18, 19]
    with pytest.raises(ValueError, match="needs 20 weights"):
        net.views(np.zeros(19))


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    net = Network([5, 4, 3, 3])
    flat = rng.normal(0, 0.5, net.size)
    batch = Rows(rng.normal(size=(7, 5)), rng.integers(0, 3, 7), rng.uniform(0.5, 2, 7))
    gradient = np.zeros_like(flat)
    loss, weight = net.gradient(flat, batch, out=gradient)
    assert weight == pytest.approx(batch.row_weight.sum())

    def mean_loss(w: np.ndarray) -> float:
        total, weights = net.loss(w, batch)
        return total / weights

    assert loss / weight == pytest.approx(mean_loss(flat))
    step = 1e-6
    numeric = np.array(
        [
            (mean_loss(flat + step * e) - mean_loss(flat - step * e)) / (2 * step)
            for e in np.eye(net.size)
        ]
    )
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


def test_adam_learns_xor():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (400, 2)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    net = Network([2, 8, 2])
    state = Adam.start(net.initial_weights(seed=1))
    settings = Settings(batch_size=32, learning_rate=0.05, weight_decay=0.0)
    for epoch in range(200):
        adam_epoch(net, state, Rows(x, y), settings, np.random.default_rng(epoch))
    accuracy = (net.probabilities(state.weights, x).argmax(axis=1) == y).mean()
    assert accuracy > 0.95
    assert state.step == 200 * 13  # ceil(400 / 32) steps an epoch


def test_balanced_class_weights():
    weights = balanced_class_weights(np.array([80, 20, 0]))
    assert list(weights) == pytest.approx([100 / (2 * 80), 100 / (2 * 20), 0.0])
