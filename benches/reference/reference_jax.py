#!/usr/bin/env python3
"""Time the crossover reference workloads with JAX on the CPU.

The workloads and their outputs are the same as in reference_numpy.py. Every
workload is one jit-compiled function. Compilation and warm-up runs happen
before timing, and each timed call ends with block_until_ready().

--threads N pins the process to N CPUs. In jax/jaxlib 0.10.2 neither
OMP_NUM_THREADS nor XLA_FLAGS=--xla_cpu_multi_thread_eigen=false changed the
speed of a matrix product on a 2-core machine, but a CPU affinity of one core did.
"""

import json
import os
import sys
import time

from reference_cli import build_parser, restrict_cpu_affinity, set_blas_thread_env

if __name__ == "__main__":
    ARGS = build_parser("JAX").parse_args()
    set_blas_thread_env(ARGS.threads)
    CPUS = restrict_cpu_affinity(ARGS.threads)

# numpy and JAX are imported only now, after the thread limits are in place.
import numpy as np  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import reference_io as rio  # noqa: E402

# The log-softmax and the LLR, KL and mean reductions run in float64.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")


# ---------------------------------------------------------------- model


def forward(params, x):
    """Return float32 logits: ReLU after every layer except the last."""
    hidden = x
    for index, (weight, bias) in enumerate(params):
        hidden = hidden @ weight.T + bias
        if index < len(params) - 1:
            hidden = jax.nn.relu(hidden)
    return hidden


def log_softmax_f64(logits):
    z = logits.astype(jnp.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - jnp.log(jnp.exp(z).sum(axis=1, keepdims=True))


@jax.jit
def reference_outputs(params, images, labels):
    logits = forward(params, images)
    logp = log_softmax_f64(logits)
    logp_label = jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
    return logp, logp_label, jnp.exp(logp), logits.argmax(axis=1)


# ---------------------------------------------------------------- eval and sweep


@jax.jit
def evaluate_llr(params, images, labels, ref_logp_label):
    """Return (mean, total) of logp_perturbed[i, y_i] - logp_reference[i, y_i] in float64."""
    logp = log_softmax_f64(forward(params, images))
    llr = jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0] - ref_logp_label
    total = llr.sum()
    return total / llr.shape[0], total


@jax.jit
def run_sweep(params, images, labels, reference, counts):
    """Prune the k smallest |w| over all weight matrices for each k in counts and return the metrics per level.

    The stable argsort breaks ties in |w| by position in the row-major weights
    concatenated in layer order, as reference_numpy.py does. Biases are never pruned.
    """
    ref_logp, ref_logp_label, ref_prob, ref_prediction = reference
    weights = [weight for weight, _ in params]
    flat = jnp.concatenate([weight.ravel() for weight in weights])
    order = jnp.argsort(jnp.abs(flat), stable=True)
    rank = jnp.zeros(flat.shape[0], dtype=jnp.int32).at[order].set(jnp.arange(flat.shape[0], dtype=jnp.int32))
    offsets = np.cumsum([0] + [weight.size for weight in weights])

    def metrics_at(k):
        pruned_flat = jnp.where(rank >= k, flat, jnp.float32(0.0))
        pruned = [
            (pruned_flat[offsets[i] : offsets[i + 1]].reshape(weight.shape), params[i][1])
            for i, weight in enumerate(weights)
        ]
        logits = forward(pruned, images)
        logp = log_softmax_f64(logits)
        prediction = logits.argmax(axis=1)
        llr = jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0] - ref_logp_label
        total = llr.sum()
        kl = (ref_prob * (ref_logp - logp)).sum(axis=1)
        return {
            "mean_llr": total / llr.shape[0],
            "total_llr": total,
            "accuracy": (prediction == labels).mean(dtype=jnp.float64),
            "mean_kl": kl.mean(),
            "flip_rate": (prediction != ref_prediction).mean(dtype=jnp.float64),
        }

    return lax.map(metrics_at, counts)


# ---------------------------------------------------------------- training


def cross_entropy(params, x, y):
    logp = jax.nn.log_softmax(forward(params, x), axis=1)
    return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()


def adam_step(params, state, x, y):
    """Run one training step with the torch.optim.Adam update (amsgrad=False, weight_decay=0) in float32."""
    m, v, step = state
    loss, grads = jax.value_and_grad(cross_entropy)(params, x, y)
    step = step + 1
    bias_correction1 = (1.0 - rio.ADAM_BETA1 ** step.astype(jnp.float64)).astype(jnp.float32)
    bias_correction2_sqrt = jnp.sqrt(1.0 - rio.ADAM_BETA2 ** step.astype(jnp.float64)).astype(jnp.float32)
    step_size = jnp.float32(rio.ADAM_LR) / bias_correction1
    m = jax.tree.map(lambda m_, g: rio.ADAM_BETA1 * m_ + (1.0 - rio.ADAM_BETA1) * g, m, grads)
    v = jax.tree.map(lambda v_, g: rio.ADAM_BETA2 * v_ + (1.0 - rio.ADAM_BETA2) * g * g, v, grads)
    params = jax.tree.map(
        lambda p, m_, v_: p - step_size * m_ / (jnp.sqrt(v_) / bias_correction2_sqrt + rio.ADAM_EPS), params, m, v
    )
    return params, (m, v, step), loss


def train_epoch(params, state, images, labels, permutation):
    """Train one epoch in the order of permutation, keeping the last partial batch, and return the mean batch loss too."""
    batch_size = rio.TRAIN_BATCH_SIZE
    full_batches = permutation.shape[0] // batch_size
    batches = permutation[: full_batches * batch_size].reshape(full_batches, batch_size)

    def body(carry, batch):
        params, state = carry
        params, state, loss = adam_step(params, state, images[batch], labels[batch])
        return (params, state), loss

    (params, state), losses = lax.scan(body, (params, state), batches)
    remainder = permutation[full_batches * batch_size :]
    if remainder.shape[0]:
        params, state, last_loss = adam_step(params, state, images[remainder], labels[remainder])
        losses = jnp.concatenate([losses, last_loss[None]])
    return params, state, losses.mean()


def new_training_run(seed):
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in rio.random_model(seed)]
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = (zeros, jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.int32))
    return params, state, np.random.default_rng(seed)


@jax.jit
def accuracy(params, images, labels):
    return (forward(params, images).argmax(axis=1) == labels).mean(dtype=jnp.float64)


# ---------------------------------------------------------------- timing


def time_ms(function):
    start = time.perf_counter()
    result = jax.block_until_ready(function())
    return (time.perf_counter() - start) * 1e3, result


def main(args):
    if args.save_weights:
        rio.save_weights(args.save_weights, rio.random_model(args.seed))
        rio.log(f"wrote seeded random model (seed {args.seed}) to {args.save_weights}")
        return

    data_kind, data = rio.load_dataset(args.data_dir, args.seed)
    weights_description, layers = rio.load_model(args.weights, args.seed)
    rio.log(f"jax {jax.__version__}, devices {jax.devices()}, CPUs {CPUS}")

    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in layers]
    test_images = jnp.asarray(data["test_images"])
    test_labels = jnp.asarray(data["test_labels"], dtype=jnp.int32)
    train_images = jnp.asarray(data["train_images"])
    train_labels = jnp.asarray(data["train_labels"], dtype=jnp.int32)

    result = {
        "impl": "jax",
        "threads": len(CPUS),
        "data": data_kind,
        "weights": weights_description,
        "eval_ms": [],
        "sweep_ms": [],
        "train_epoch_ms": [],
        "eval_mean_llr": None,
        "sweep": None,
        "train_loss": [],
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__, "jax": jax.__version__},
        "cpus": CPUS,
    }

    reference = jax.block_until_ready(reference_outputs(params, test_images, test_labels))

    if "eval" in args.what:
        # The first call compiles, so at least one untimed call runs even with --warmup 0.
        for _ in range(max(args.warmup, 1)):
            jax.block_until_ready(evaluate_llr(params, test_images, test_labels, reference[1]))
        for _ in range(args.repeats):
            elapsed, (mean_llr, _) = time_ms(lambda: evaluate_llr(params, test_images, test_labels, reference[1]))
            result["eval_ms"].append(elapsed)
        result["eval_mean_llr"] = float(mean_llr)
        rio.log(f"eval: median {rio.median(result['eval_ms']):.2f} ms, mean LLR {float(mean_llr):.6g}")

    if "sweep" in args.what:
        counts_list = rio.pruned_counts(layers)
        counts = jnp.asarray(counts_list, dtype=jnp.int32)
        for _ in range(max(args.warmup, 1)):
            jax.block_until_ready(run_sweep(params, test_images, test_labels, reference, counts))
        for _ in range(args.repeats):
            elapsed, metrics = time_ms(lambda: run_sweep(params, test_images, test_labels, reference, counts))
            result["sweep_ms"].append(elapsed)
        result["sweep"] = {
            "levels": list(rio.SWEEP_LEVELS),
            "pruned": counts_list,
            **{name: [float(value) for value in values] for name, values in metrics.items()},
        }
        rio.log(f"sweep: median {rio.median(result['sweep_ms']):.1f} ms")

    if "train" in args.what or args.train_epochs:
        epoch_fn = compile_train_epoch(args.seed, train_images, train_labels)

    if "train" in args.what:
        for _ in range(args.repeats):
            run_params, state, rng = new_training_run(args.seed)
            elapsed, (_, _, loss) = time_ms(
                lambda: epoch_fn(run_params, state, train_images, train_labels, rng.permutation(len(train_labels)))
            )
            result["train_epoch_ms"].append(elapsed)
            result["train_loss"].append(float(loss))
        rio.log(f"train: median epoch {rio.median(result['train_epoch_ms']):.0f} ms, first-epoch loss {float(loss):.4f}")

    if args.train_epochs:
        run_params, state, rng = new_training_run(args.seed)
        test_accuracy = []
        for epoch in range(args.train_epochs):
            permutation = rng.permutation(len(train_labels))
            run_params, state, loss = epoch_fn(run_params, state, train_images, train_labels, permutation)
            test_accuracy.append(float(accuracy(run_params, test_images, test_labels)))
            rio.log(f"epoch {epoch + 1}: mean loss {float(loss):.4f}, test accuracy {test_accuracy[-1]:.4f}")
        result["train_test_accuracy"] = test_accuracy
        if args.save_trained:
            rio.save_weights(args.save_trained, [(np.asarray(w), np.asarray(b)) for w, b in run_params])
            rio.log(f"wrote trained model to {args.save_trained}")

    if args.json:
        print(json.dumps(result))
    else:
        rio.print_summary(result)


def compile_train_epoch(seed, train_images, train_labels):
    """Compile train_epoch ahead of time, so that no timed call includes compilation."""
    params, state, rng = new_training_run(seed)
    permutation = rng.permutation(len(train_labels))
    return jax.jit(train_epoch).lower(params, state, train_images, train_labels, permutation).compile()


if __name__ == "__main__":
    main(ARGS)
