#!/usr/bin/env python3
"""Time the crossover reference workloads with numpy.

eval:  forward pass of the 10,000 test images in float32, log-softmax in float64,
       and the per-sample log-likelihood ratio against reference log-probabilities.
sweep: 24-level global magnitude pruning sweep with mean LLR, accuracy, mean
       KL(reference || pruned) and flip rate at each level.
train: one epoch of Adam on the 60,000 training images for a 784-128-10 ReLU MLP.

Run with --help for the options. See README.md in this folder for what is timed.
"""

import json
import os
import sys
import time

from reference_cli import build_parser, set_blas_thread_env

if __name__ == "__main__":
    ARGS = build_parser("numpy").parse_args()
    set_blas_thread_env(ARGS.threads)

# numpy is imported only now because OpenBLAS reads OPENBLAS_NUM_THREADS when it loads.
import numpy as np  # noqa: E402

import reference_io as rio  # noqa: E402


# ---------------------------------------------------------------- model


def forward(layers, x):
    """Return float32 logits: ReLU after every layer except the last."""
    hidden = x
    last = len(layers) - 1
    for index, (weight, bias) in enumerate(layers):
        hidden = hidden @ weight.T
        hidden += bias
        if index < last:
            np.maximum(hidden, 0.0, out=hidden)
    return hidden


def log_softmax_f64(logits):
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


class Reference:
    """Reference log-probabilities and predictions of the unperturbed model, computed once per process."""

    def __init__(self, layers, images, labels):
        logits = forward(layers, images)
        self.labels = labels
        self.rows = np.arange(len(labels))
        self.logp = log_softmax_f64(logits)
        self.logp_label = self.logp[self.rows, labels]
        self.prob = np.exp(self.logp)
        self.prediction = logits.argmax(axis=1)


# ---------------------------------------------------------------- eval and sweep


def evaluate_llr(layers, images, reference):
    """Return (mean, total) of logp_perturbed[i, y_i] - logp_reference[i, y_i] in float64."""
    logp = log_softmax_f64(forward(layers, images))
    llr = logp[reference.rows, reference.labels] - reference.logp_label
    total = float(llr.sum())
    return total / len(llr), total


def run_sweep(layers, images, reference, counts):
    """Prune the k smallest |w| over all weight matrices for each k in counts and return the metrics per level.

    Ties in |w| are broken by position in the concatenation of the row-major
    flattened weight matrices in layer order (stable argsort). Biases are never pruned.
    """
    weights = [weight for weight, _ in layers]
    biases = [bias for _, bias in layers]
    flat = np.concatenate([weight.ravel() for weight in weights])
    order = np.argsort(np.abs(flat), kind="stable")
    offsets = np.cumsum([0] + [weight.size for weight in weights])

    metrics = {"mean_llr": [], "total_llr": [], "accuracy": [], "mean_kl": [], "flip_rate": []}
    for k in counts:
        pruned_flat = flat.copy()
        pruned_flat[order[:k]] = 0.0
        pruned_layers = [
            (pruned_flat[offsets[i] : offsets[i + 1]].reshape(weight.shape), biases[i])
            for i, weight in enumerate(weights)
        ]

        logits = forward(pruned_layers, images)
        logp = log_softmax_f64(logits)
        prediction = logits.argmax(axis=1)

        llr = logp[reference.rows, reference.labels] - reference.logp_label
        total = float(llr.sum())
        kl = (reference.prob * (reference.logp - logp)).sum(axis=1)
        metrics["mean_llr"].append(total / len(llr))
        metrics["total_llr"].append(total)
        metrics["accuracy"].append(float(np.mean(prediction == reference.labels)))
        metrics["mean_kl"].append(float(kl.mean()))
        metrics["flip_rate"].append(float(np.mean(prediction != reference.prediction)))
    return metrics


# ---------------------------------------------------------------- training


class Adam:
    """Adam with the update of torch.optim.Adam (amsgrad=False, weight_decay=0)."""

    def __init__(self, params, lr=rio.ADAM_LR, beta1=rio.ADAM_BETA1, beta2=rio.ADAM_BETA2, eps=rio.ADAM_EPS):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.step_count = 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.scratch = [np.empty_like(p) for p in params]

    def step(self, params, grads):
        self.step_count += 1
        bias_correction1 = 1.0 - self.beta1**self.step_count
        bias_correction2_sqrt = np.sqrt(1.0 - self.beta2**self.step_count)
        step_size = self.lr / bias_correction1
        for param, grad, m, v, denom in zip(params, grads, self.m, self.v, self.scratch):
            m *= self.beta1
            m += (1.0 - self.beta1) * grad
            v *= self.beta2
            v += (1.0 - self.beta2) * grad * grad
            # As in PyTorch: param -= step_size * m / (sqrt(v) / sqrt(bias_correction2) + eps).
            np.sqrt(v, out=denom)
            denom /= bias_correction2_sqrt
            denom += self.eps
            np.divide(m, denom, out=denom)
            denom *= step_size
            param -= denom


def train_step(layers, x, y, optimizer):
    """Run forward, softmax cross-entropy (batch mean), backward and one Adam step in place, and return the loss."""
    activations = [x]
    hidden = x
    last = len(layers) - 1
    for index, (weight, bias) in enumerate(layers):
        hidden = hidden @ weight.T
        hidden += bias
        if index < last:
            np.maximum(hidden, 0.0, out=hidden)
            activations.append(hidden)

    rows = np.arange(len(y))
    hidden -= hidden.max(axis=1, keepdims=True)
    np.exp(hidden, out=hidden)
    hidden /= hidden.sum(axis=1, keepdims=True)
    loss = -float(np.log(hidden[rows, y]).mean())

    grad_out = hidden
    grad_out[rows, y] -= 1.0
    grad_out /= len(y)

    grads = [None] * (2 * len(layers))
    for index in range(last, -1, -1):
        weight = layers[index][0]
        grads[2 * index] = grad_out.T @ activations[index]
        grads[2 * index + 1] = grad_out.sum(axis=0)
        if index > 0:
            grad_out = grad_out @ weight
            grad_out *= activations[index] > 0

    params = [tensor for layer in layers for tensor in layer]
    optimizer.step(params, grads)
    return loss


def train_epoch(layers, optimizer, images, labels, rng, batch_size=rio.TRAIN_BATCH_SIZE):
    """Train one epoch over a fresh permutation drawn from rng, keeping the last partial batch, and return the mean batch loss."""
    permutation = rng.permutation(len(labels))
    losses = []
    for start in range(0, len(labels), batch_size):
        batch = permutation[start : start + batch_size]
        losses.append(train_step(layers, images[batch], labels[batch], optimizer))
    return float(np.mean(losses))


def new_training_run(seed):
    layers = [(w.copy(), b.copy()) for w, b in rio.random_model(seed)]
    optimizer = Adam([tensor for layer in layers for tensor in layer])
    return layers, optimizer, np.random.default_rng(seed)


def accuracy(layers, images, labels):
    return float(np.mean(forward(layers, images).argmax(axis=1) == labels))


# ---------------------------------------------------------------- timing


def time_ms(function):
    start = time.perf_counter()
    result = function()
    return (time.perf_counter() - start) * 1e3, result


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [
        {key: pool.get(key) for key in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
        for pool in threadpool_info()
        if pool.get("user_api") == "blas"
    ]


def main(args):
    if os.environ.get("OPENBLAS_CORETYPE"):
        rio.log(
            f"warning: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set, "
            "which forces an OpenBLAS kernel and can slow numpy down"
        )
    if args.save_weights:
        rio.save_weights(args.save_weights, rio.random_model(args.seed))
        rio.log(f"wrote seeded random model (seed {args.seed}) to {args.save_weights}")
        return

    data_kind, data = rio.load_dataset(args.data_dir, args.seed)
    weights_description, layers = rio.load_model(args.weights, args.seed)
    test_images, test_labels = data["test_images"], data["test_labels"]
    blas = blas_info()
    threads = args.threads or (blas[0]["num_threads"] if blas else os.cpu_count())
    rio.log(f"numpy {np.__version__}, BLAS: {blas if blas is not None else 'unknown (threadpoolctl not installed)'}")

    result = {
        "impl": "numpy",
        "threads": threads,
        "data": data_kind,
        "weights": weights_description,
        "eval_ms": [],
        "sweep_ms": [],
        "train_epoch_ms": [],
        "eval_mean_llr": None,
        "sweep": None,
        "train_loss": [],
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__},
        "blas": blas,
    }

    reference = Reference(layers, test_images, test_labels)

    if "eval" in args.what:
        for _ in range(args.warmup):
            evaluate_llr(layers, test_images, reference)
        for _ in range(args.repeats):
            elapsed, (mean_llr, _) = time_ms(lambda: evaluate_llr(layers, test_images, reference))
            result["eval_ms"].append(elapsed)
        result["eval_mean_llr"] = mean_llr
        rio.log(f"eval: median {rio.median(result['eval_ms']):.2f} ms, mean LLR {mean_llr:.6g}")

    if "sweep" in args.what:
        counts = rio.pruned_counts(layers)
        for _ in range(args.warmup):
            run_sweep(layers, test_images, reference, counts)
        for _ in range(args.repeats):
            elapsed, metrics = time_ms(lambda: run_sweep(layers, test_images, reference, counts))
            result["sweep_ms"].append(elapsed)
        result["sweep"] = {"levels": list(rio.SWEEP_LEVELS), "pruned": counts, **metrics}
        rio.log(f"sweep: median {rio.median(result['sweep_ms']):.1f} ms")

    if "train" in args.what:
        for _ in range(args.repeats):
            run_layers, optimizer, rng = new_training_run(args.seed)
            elapsed, loss = time_ms(
                lambda: train_epoch(run_layers, optimizer, data["train_images"], data["train_labels"], rng)
            )
            result["train_epoch_ms"].append(elapsed)
            result["train_loss"].append(loss)
        rio.log(f"train: median epoch {rio.median(result['train_epoch_ms']):.0f} ms, first-epoch loss {loss:.4f}")

    if args.train_epochs:
        run_layers, optimizer, rng = new_training_run(args.seed)
        test_accuracy = []
        for epoch in range(args.train_epochs):
            loss = train_epoch(run_layers, optimizer, data["train_images"], data["train_labels"], rng)
            test_accuracy.append(accuracy(run_layers, test_images, test_labels))
            rio.log(f"epoch {epoch + 1}: mean loss {loss:.4f}, test accuracy {test_accuracy[-1]:.4f}")
        result["train_test_accuracy"] = test_accuracy
        if args.save_trained:
            rio.save_weights(args.save_trained, run_layers)
            rio.log(f"wrote trained model to {args.save_trained}")

    if args.json:
        print(json.dumps(result))
    else:
        rio.print_summary(result)


if __name__ == "__main__":
    main(ARGS)
