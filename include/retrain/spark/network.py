"""The network MLlib can save, in float32 numpy: sigmoid hidden layers, a softmax output.

Its parameters are one flat vector in MLlib's own layout (`ml/ann/Layer.scala`): per affine
layer the (out, in) matrix column-major, then the layer's biases, layers in order. Column-major
(out, in) is row-major (in, out), so `x @ W + b` works on views of the vector with no copies,
and the vector is exactly what `MultilayerPerceptronClassifier(initialWeights=...)` takes.

Training is mini-batch Adam with decoupled weight decay (AdamW) on a weighted cross-entropy;
`retrain.spark.trainer` runs it inside Spark tasks. Nothing here knows about Spark.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

DTYPE = np.float32
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8  # Adam's usual constants
PROBABILITY_FLOOR = 1e-7  # log of a float32 probability of 0 is clipped here
CHUNK_ROWS = 4096  # rows per forward pass when scoring, to bound memory


@dataclass
class Rows:
    """Feature rows, class indices and (with class weights) each row's weight."""

    x: np.ndarray
    y: np.ndarray
    row_weight: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


class Network:
    """Layer sizes and views of a flat parameter vector as (W, b) pairs."""

    def __init__(self, layers: list[int] | tuple[int, ...]) -> None:
        if len(layers) < 2 or min(layers) < 1:
            raise ValueError(f"layers must be 2+ positive sizes, got {list(layers)}")
        self.layers = tuple(int(n) for n in layers)
        self.shapes = list(zip(self.layers, self.layers[1:], strict=False))
        self.size = sum(fan_in * fan_out + fan_out for fan_in, fan_out in self.shapes)
        # 1 on matrix entries, 0 on biases: weight decay shrinks weights, not offsets.
        self.decay_mask = np.concatenate(
            [np.r_[np.ones(a * b, DTYPE), np.zeros(b, DTYPE)] for a, b in self.shapes]
        )

    def views(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        if flat.shape != (self.size,):
            raise ValueError(f"{self.layers} needs {self.size} weights, got {flat.shape}")
        pairs, offset = [], 0
        for fan_in, fan_out in self.shapes:
            matrix = flat[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out)
            offset += fan_in * fan_out
            pairs.append((matrix, flat[offset : offset + fan_out]))
            offset += fan_out
        return pairs

    def initial_weights(self, seed: int) -> np.ndarray:
        """Glorot-uniform weights scaled for sigmoid units (as scikit-learn's MLP), zero bias."""
        rng = np.random.default_rng(seed)
        parts = []
        for fan_in, fan_out in self.shapes:
            bound = np.sqrt(2.0 / (fan_in + fan_out))
            parts += [rng.uniform(-bound, bound, fan_in * fan_out), np.zeros(fan_out)]
        return np.concatenate(parts).astype(DTYPE)

    def forward(self, flat: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's activations, the input first and the class probabilities last."""
        pairs = self.views(flat)
        activations = [x]
        for i, (matrix, bias) in enumerate(pairs):
            z = activations[-1] @ matrix
            z += bias
            if i < len(pairs) - 1:
                _sigmoid(z)
            else:
                _softmax(z)
            activations.append(z)
        return activations

    def gradient(self, flat: np.ndarray, batch: Rows, out: np.ndarray) -> tuple[float, float]:
        """Fill `out` with the gradient of the batch's weighted mean cross-entropy; return
        (sum of weighted losses, sum of weights) of the batch."""
        activations = self.forward(flat, batch.x)
        rows, y = np.arange(len(batch)), batch.y
        delta = activations[-1]  # softmax probabilities; becomes d(loss)/d(logits) in place
        picked = -np.log(np.maximum(delta[rows, y], PROBABILITY_FLOOR))
        delta[rows, y] -= 1.0
        if batch.row_weight is None:
            loss, weight = float(picked.sum()), float(len(batch))
            delta *= 1.0 / len(batch)
        else:
            loss, weight = float(picked @ batch.row_weight), float(batch.row_weight.sum())
            delta *= (batch.row_weight / weight)[:, None]
        pairs, grads = self.views(flat), self.views(out)
        for i in range(len(pairs) - 1, -1, -1):
            (grad_matrix, grad_bias), below = grads[i], activations[i]
            np.matmul(below.T, delta, out=grad_matrix)
            np.matmul(_ones(len(delta), delta.dtype), delta, out=grad_bias)  # BLAS column sums
            if i:
                delta = delta @ pairs[i][0].T
                delta *= below
                delta *= 1.0 - below  # the sigmoid's derivative from its output
        return loss, weight

    def probabilities(self, flat: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Class probabilities of the rows of `x`, in chunks."""
        parts = [
            self.forward(flat, x[start : start + CHUNK_ROWS])[-1]
            for start in range(0, len(x), CHUNK_ROWS)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.layers[-1]), flat.dtype)

    def loss(self, flat: np.ndarray, rows: Rows) -> tuple[float, float]:
        """(sum of weighted cross-entropy, sum of weights) over the rows."""
        if not len(rows):
            return 0.0, 0.0
        p = self.probabilities(flat, rows.x)
        losses = -np.log(np.maximum(p[np.arange(len(rows)), rows.y], PROBABILITY_FLOOR))
        if rows.row_weight is None:
            return float(losses.sum(dtype=np.float64)), float(len(rows))
        return float(losses @ rows.row_weight), float(rows.row_weight.sum(dtype=np.float64))


def _sigmoid(z: np.ndarray) -> None:
    """In place; through tanh, which numpy vectorizes (scipy's expit is ~10x slower here)."""
    z *= 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5


def _softmax(z: np.ndarray) -> None:
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= (z @ _ones(z.shape[1], z.dtype))[:, None]  # row sums by BLAS: numpy's are slow here


@functools.cache
def _ones(size: int, dtype: np.dtype) -> np.ndarray:
    return np.ones(size, dtype)


@dataclass
class Adam:
    """The weights and Adam's moment estimates, all flat vectors in MLlib's layout."""

    weights: np.ndarray
    m: np.ndarray
    v: np.ndarray
    step: int = 0

    @classmethod
    def start(cls, weights: np.ndarray) -> Adam:
        weights = np.ascontiguousarray(weights, dtype=DTYPE)
        return cls(weights.copy(), np.zeros_like(weights), np.zeros_like(weights))


@dataclass(frozen=True)
class Settings:
    batch_size: int
    learning_rate: float
    weight_decay: float


def adam_epoch(
    net: Network, state: Adam, rows: Rows, settings: Settings, rng: np.random.Generator
) -> tuple[float, float]:
    """One pass over the rows in a random order, one Adam step per batch, updating `state`.

    Returns (sum of the batches' weighted training loss, sum of weights), measured on each
    batch before its step, as Keras and scikit-learn report an epoch's loss.
    """
    order = rng.permutation(len(rows))
    x, y = rows.x[order], rows.y[order]  # one copy per epoch; every batch is then a slice
    row_weight = rows.row_weight[order] if rows.row_weight is not None else None
    gradient = np.zeros_like(state.weights)
    decay = (settings.learning_rate * settings.weight_decay) * net.decay_mask
    loss_sum = weight_sum = 0.0
    for start in range(0, len(x), settings.batch_size):
        batch = slice(start, start + settings.batch_size)
        batch_loss, batch_weight = net.gradient(
            state.weights,
            Rows(x[batch], y[batch], row_weight[batch] if row_weight is not None else None),
            out=gradient,
        )
        loss_sum, weight_sum = loss_sum + batch_loss, weight_sum + batch_weight
        _adam_step(state, gradient, decay, settings.learning_rate)
    return loss_sum, weight_sum


def _adam_step(state: Adam, gradient: np.ndarray, decay: np.ndarray, rate: float) -> None:
    state.step += 1
    state.m *= BETA1
    state.m += (1 - BETA1) * gradient
    state.v *= BETA2
    gradient *= gradient
    state.v += (1 - BETA2) * gradient
    step = rate * np.sqrt(1 - BETA2**state.step) / (1 - BETA1**state.step)
    state.weights -= decay * state.weights
    state.weights -= step * state.m / (np.sqrt(state.v) + EPSILON)


def balanced_class_weights(counts: np.ndarray) -> np.ndarray:
    """rows / (classes * rows of the class), as scikit-learn's class_weight='balanced'; a class
    with no rows gets 0."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights
