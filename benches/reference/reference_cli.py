"""Command-line options shared by reference_numpy.py and reference_jax.py.

This module must not import numpy or JAX: the thread-count environment
variables only take effect when they are set before those libraries load.
"""

import argparse
import os

WORKLOADS = ("eval", "sweep", "train")


def parse_workloads(text):
    """Parse a comma-separated workload list such as "eval,sweep"."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"invalid workload list {text!r}: expected a comma-separated subset of {','.join(WORKLOADS)}"
        )
    return names


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def build_parser(impl_name):
    parser = argparse.ArgumentParser(
        description=f"Time the crossover reference workloads with {impl_name}: one dense "
        "evaluation, a 24-level magnitude pruning sweep and one training epoch."
    )
    parser.add_argument(
        "--weights",
        help="safetensors file with float32 tensors layers.{i}.weight (out, in) and layers.{i}.bias; "
        "default: a seeded random 784-128-10 model",
    )
    parser.add_argument(
        "--data-dir",
        help="directory with the MNIST IDX files (optionally gzipped); default: $MNIST_DIR, "
        "else data/mnist under the repository root; seeded synthetic data when the files are missing",
    )
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per workload (default 3)")
    parser.add_argument(
        "--warmup",
        type=non_negative_int,
        default=1,
        help="untimed runs of eval and sweep before timing (default 1); training is never warmed up",
    )
    parser.add_argument(
        "--what",
        type=parse_workloads,
        default=list(WORKLOADS),
        help="comma-separated workloads to time: eval,sweep,train (default all)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="number of CPU threads for the linear algebra library (default: library default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the random model, synthetic data and shuffling")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout, and progress on stderr")
    parser.add_argument(
        "--train-epochs",
        type=non_negative_int,
        default=0,
        help="also train this many epochs from the seeded initialization and report test accuracy (untimed sanity check)",
    )
    parser.add_argument("--save-trained", help="write the model from --train-epochs to this safetensors file")
    parser.add_argument(
        "--save-weights",
        help="write the seeded random model to this safetensors file and exit without timing anything",
    )
    return parser


def set_blas_thread_env(threads):
    """Set the thread-count variables that OpenBLAS, OpenMP and MKL read when they load."""
    if threads is None:
        return
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def restrict_cpu_affinity(threads):
    """Pin this process to its first `threads` allowed CPUs and return the CPU ids used.

    jaxlib 0.10.2 ignored the thread-count variables in a test on a 2-core machine,
    but a matrix product took twice as long when pinned to one CPU.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if threads is None:
        return allowed
    chosen = allowed[:threads]
    os.sched_setaffinity(0, chosen)
    return chosen
