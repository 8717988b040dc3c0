#!/usr/bin/env python3
"""Run the Rust, numpy and JAX timings on the same weights and data and print the medians and ratios.

Each round runs every implementation once, in the order rust, numpy, jax, so
that slow drifts in machine load hit all of them alike. Each run is a separate
process that times --repeats runs of each workload. The medians are taken over
all rounds and repeats.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_TRAINED_MODEL = REPO_ROOT / "results" / "pruning_mnist" / "model.safetensors"
WORKLOADS = ("eval", "sweep", "train")
TIMING_KEYS = {"eval": "eval_ms", "sweep": "sweep_ms", "train": "train_epoch_ms"}
SWEEP_METRICS = ("mean_llr", "accuracy", "mean_kl", "flip_rate")


def log(message):
    print(message, file=sys.stderr, flush=True)


def parse_thread_counts(text):
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"invalid thread counts {text!r}: expected e.g. 1 or 1,2")
    return counts


def parse_workloads(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in WORKLOADS for name in names):
        raise argparse.ArgumentTypeError(f"invalid workload list {text!r}: expected a subset of eval,sweep,train")
    return names


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights",
        help=f"safetensors model for all implementations; default: {DEFAULT_TRAINED_MODEL.relative_to(REPO_ROOT)} "
        "if it exists, else a seeded random model written to a temporary file",
    )
    parser.add_argument("--data-dir", help="MNIST directory; default: $MNIST_DIR, else data/mnist under the repository root")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per workload inside each process (default 1)")
    parser.add_argument("--what", type=parse_workloads, default=list(WORKLOADS), help="workloads (default eval,sweep,train)")
    parser.add_argument(
        "--threads",
        type=parse_thread_counts,
        default=[1],
        help="comma-separated thread counts, each run as its own comparison (default 1)",
    )
    parser.add_argument("--skip-rust", action="store_true", help="do not build or run the Rust timings example")
    parser.add_argument("--skip-jax", action="store_true", help="do not run the JAX reference even if JAX is installed")
    parser.add_argument("--out", help="also write all runs, medians and ratios to this JSON file")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds after which one run is stopped (default 3600)")
    parser.add_argument("--verbose", action="store_true", help="show the stderr of every run")
    return parser


# ---------------------------------------------------------------- running


def rust_binary():
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return target_dir / "release" / "examples" / "timings"


def build_rust():
    command = ["cargo", "build", "--release", "--example", "timings"]
    log(f"building: {' '.join(command)}")
    completed = subprocess.run(command, cwd=REPO_ROOT)
    if completed.returncode != 0:
        sys.exit(f"error: `{' '.join(command)}` failed with exit code {completed.returncode}; fix the build or pass --skip-rust")
    binary = rust_binary()
    if not binary.is_file():
        sys.exit(f"error: the build succeeded but {binary} does not exist; set CARGO_TARGET_DIR or pass --skip-rust")
    return binary


def implementation_commands(args, rust_path):
    commands = {}
    if rust_path:
        commands["rust"] = [str(rust_path)]
    commands["numpy"] = [sys.executable, str(HERE / "reference_numpy.py")]
    if not args.skip_jax:
        if importlib.util.find_spec("jax") is None:
            log("jax: not installed, skipping the JAX reference (install it with: python3 -m pip install 'jax[cpu]')")
        else:
            commands["jax"] = [sys.executable, str(HERE / "reference_jax.py")]
    return commands


def thread_env(threads):
    env = dict(os.environ)
    for name in ("RAYON_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_json(name, command, env, timeout, verbose):
    """Run one implementation and return its parsed JSON output, or print its stderr and exit when it fails."""
    try:
        completed = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        sys.exit(f"error: {name} timed out after {timeout:.0f} s: {' '.join(command)}")
    if verbose or completed.returncode != 0:
        sys.stderr.write(completed.stderr)
    if completed.returncode != 0:
        sys.exit(f"error: {name} failed with exit code {completed.returncode}: {' '.join(command)}")
    return parse_json_output(name, completed.stdout)


def parse_json_output(name, stdout):
    """Parse the whole stdout as JSON, else its last line that parses as a JSON object."""
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        pass
    for line in reversed(stdout.strip().splitlines()):
        if line.lstrip().startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    sys.exit(f"error: {name} printed no JSON object on stdout; output was:\n{stdout[-2000:]}")


def prepare_weights(args, rust_path, scratch_dir):
    """Return the weights path to use, writing a seeded random model into scratch_dir when none exists."""
    if args.weights:
        path = Path(args.weights)
        if not path.is_file():
            sys.exit(f"error: weights file not found: {path}")
        return path
    if DEFAULT_TRAINED_MODEL.is_file():
        log(f"weights: using the trained model {DEFAULT_TRAINED_MODEL}")
        return DEFAULT_TRAINED_MODEL
    path = Path(scratch_dir) / "random_model.safetensors"
    if rust_path:
        command = [str(rust_path), "--save-weights", str(path)]
    else:
        command = [sys.executable, str(HERE / "reference_numpy.py"), "--save-weights", str(path)]
    log(f"weights: no trained model found, writing a seeded random model: {' '.join(command)}")
    completed = subprocess.run(command, cwd=REPO_ROOT, timeout=args.timeout)
    if completed.returncode != 0 or not path.is_file():
        sys.exit(f"error: writing the random model failed (exit code {completed.returncode}): {' '.join(command)}")
    return path


# ---------------------------------------------------------------- summarizing


def medians(runs, what):
    result = {}
    for workload in what:
        times = [t for run in runs for t in run.get(TIMING_KEYS[workload]) or []]
        result[workload] = statistics.median(times) if times else None
    return result


def ratios(median_by_impl, baseline, what):
    result = {}
    for name, by_workload in median_by_impl.items():
        if name == baseline:
            continue
        result[f"{name}/{baseline}"] = {
            workload: (by_workload[workload] / median_by_impl[baseline][workload])
            if by_workload[workload] and median_by_impl[baseline][workload]
            else None
            for workload in what
        }
    return result


def cross_check(last_runs, baseline):
    """Return the maximum absolute difference of each sweep metric and of the eval mean LLR against the baseline."""
    base = last_runs[baseline]
    differences = {}
    for name, run in last_runs.items():
        if name == baseline:
            continue
        entry = {}
        if base.get("eval_mean_llr") is not None and run.get("eval_mean_llr") is not None:
            entry["eval_mean_llr"] = abs(run["eval_mean_llr"] - base["eval_mean_llr"])
        if base.get("sweep") and run.get("sweep"):
            if base["sweep"].get("pruned") != run["sweep"].get("pruned"):
                entry["pruned_counts_match"] = False
            for metric in SWEEP_METRICS:
                ours, theirs = base["sweep"].get(metric), run["sweep"].get(metric)
                if ours and theirs and len(ours) == len(theirs):
                    entry[metric] = max(abs(a - b) for a, b in zip(ours, theirs))
        differences[f"{name} vs {baseline}"] = entry
    return differences


def format_ms(value):
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def print_table(threads, medians_by_impl, ratio_table, what, runs_per_impl):
    names = list(medians_by_impl)
    ratio_names = list(ratio_table)
    print(f"\nthreads {threads} ({runs_per_impl} timed runs per implementation and workload; medians in ms)")
    header = f"{'workload':<12}" + "".join(f"{name + ' ms':>12}" for name in names)
    header += "".join(f"{ratio:>14}" for ratio in ratio_names)
    print(header)
    labels = {"eval": "eval", "sweep": "sweep", "train": "train epoch"}
    for workload in what:
        row = f"{labels[workload]:<12}" + "".join(f"{format_ms(medians_by_impl[name][workload]):>12}" for name in names)
        for ratio in ratio_names:
            value = ratio_table[ratio][workload]
            row += f"{(f'{value:.2f}x' if value else '-'):>14}"
        print(row)


def print_cross_check(differences):
    for pair, entry in differences.items():
        if not entry:
            continue
        parts = [f"{key} {value:.2e}" if isinstance(value, float) else f"{key} {value}" for key, value in entry.items()]
        print(f"max |difference| {pair}: " + ", ".join(parts))


# ---------------------------------------------------------------- main


def main():
    args = build_parser().parse_args()
    with tempfile.TemporaryDirectory(prefix="crossover-compare-") as scratch_dir:
        compare(args, scratch_dir)


def compare(args, scratch_dir):
    if args.rounds < 1 or args.repeats < 1:
        sys.exit("error: --rounds and --repeats must be >= 1")
    if os.environ.get("OPENBLAS_CORETYPE"):
        log(f"warning: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set and may slow numpy down")

    rust_path = None if args.skip_rust else build_rust()
    commands = implementation_commands(args, rust_path)
    weights = prepare_weights(args, rust_path, scratch_dir)
    data_dir = Path(args.data_dir or os.environ.get("MNIST_DIR") or REPO_ROOT / "data" / "mnist").resolve()
    baseline = "rust" if "rust" in commands else "numpy"
    common = ["--weights", str(weights), "--data-dir", str(data_dir), "--repeats", str(args.repeats)]
    common += ["--what", ",".join(args.what), "--json"]

    report = {
        "weights": str(weights),
        "data_dir": str(data_dir),
        "rounds": args.rounds,
        "repeats": args.repeats,
        "what": args.what,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_average_start": os.getloadavg(),
        "by_threads": {},
    }

    for threads in args.threads:
        runs = {name: [] for name in commands}
        for round_index in range(args.rounds):
            for name, command in commands.items():
                full_command = command + common + ["--threads", str(threads)]
                output = run_json(name, full_command, thread_env(threads), args.timeout, args.verbose)
                runs[name].append(output)
                times = ", ".join(
                    f"{workload} {format_ms(statistics.median(output[TIMING_KEYS[workload]]))} ms"
                    for workload in args.what
                    if output.get(TIMING_KEYS[workload])
                )
                log(f"threads {threads}, round {round_index + 1}/{args.rounds}: {name} {times}")

        data_kinds = {name: outputs[-1].get("data") for name, outputs in runs.items()}
        if len(set(data_kinds.values())) > 1:
            log(f"warning: the implementations used different data: {data_kinds}")
        medians_by_impl = {name: medians(outputs, args.what) for name, outputs in runs.items()}
        ratio_table = ratios(medians_by_impl, baseline, args.what)
        differences = cross_check({name: outputs[-1] for name, outputs in runs.items()}, baseline)

        print_table(threads, medians_by_impl, ratio_table, args.what, args.rounds * args.repeats)
        print(f"data {', '.join(sorted(set(map(str, data_kinds.values()))))}, weights {weights}")
        print_cross_check(differences)
        report["by_threads"][str(threads)] = {
            "medians_ms": medians_by_impl,
            "ratios": ratio_table,
            "cross_check_max_abs_difference": differences,
            "runs": runs,
        }

    report["load_average_end"] = os.getloadavg()
    print(f"load average at start {report['load_average_start'][0]:.2f}, at end {report['load_average_end'][0]:.2f} "
          f"(1 min, {os.cpu_count()} CPUs)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
