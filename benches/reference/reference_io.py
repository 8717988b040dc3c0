"""Data, weights and sweep definitions shared by the numpy and JAX reference scripts.

The formats match the Rust side of crossover: raw MNIST IDX files (optionally
gzipped), pixels scaled by 1/255 to float32 and flattened to 784 values, and
safetensors weights in the PyTorch nn.Linear layout.
"""

import gzip
import os
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]

IMAGE_SIZE = 784
NUM_CLASSES = 10
HIDDEN_SIZE = 128
TRAIN_COUNT = 60_000
TEST_COUNT = 10_000

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"

# Written out as literals so that the Rust side can use the same float64 values.
SWEEP_LEVELS = (
    0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45,
    0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95,
    0.96, 0.97, 0.98, 0.99,
)  # fmt: skip

TRAIN_BATCH_SIZE = 64
ADAM_LR = 1e-3
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- MNIST


def default_data_dir():
    return Path(os.environ.get("MNIST_DIR") or REPO_ROOT / "data" / "mnist")


def _find_idx_file(data_dir, name):
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_maybe_gzipped(path):
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        return gzip.decompress(raw)
    return raw


def read_idx(path, expected_magic):
    """Read one IDX file into a uint8 array of the shape its header declares."""
    raw = _read_maybe_gzipped(path)
    if len(raw) < 8:
        raise ValueError(f"invalid IDX file {path}: only {len(raw)} bytes")
    magic = int.from_bytes(raw[0:4], "big")
    if magic != expected_magic:
        raise ValueError(f"invalid IDX file {path}: magic 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(raw) != header_len + count:
        raise ValueError(
            f"invalid IDX file {path}: header declares shape {shape} ({count} bytes of data), "
            f"but the file has {len(raw) - header_len}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


def _load_split(data_dir, images_name, labels_name):
    images = read_idx(_find_idx_file(data_dir, images_name), IDX_IMAGES_MAGIC)
    labels = read_idx(_find_idx_file(data_dir, labels_name), IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_name} has {images.shape[0]} images but {labels_name} has {labels.shape[0]} labels")
    flat = images.reshape(images.shape[0], -1)
    if flat.shape[1] != IMAGE_SIZE:
        raise ValueError(f"{images_name}: images have {flat.shape[1]} pixels, expected {IMAGE_SIZE}")
    return (flat.astype(np.float32) / np.float32(255.0)), labels.astype(np.int64)


def synthetic_dataset(seed):
    """Make seeded uniform [0, 1) images and uniform labels with the MNIST shapes."""
    rng = np.random.default_rng(seed + 1)
    return {
        "train_images": rng.random((TRAIN_COUNT, IMAGE_SIZE), dtype=np.float32),
        "train_labels": rng.integers(0, NUM_CLASSES, TRAIN_COUNT, dtype=np.int64),
        "test_images": rng.random((TEST_COUNT, IMAGE_SIZE), dtype=np.float32),
        "test_labels": rng.integers(0, NUM_CLASSES, TEST_COUNT, dtype=np.int64),
    }


def load_dataset(data_dir, seed):
    """Return (kind, arrays): kind is "mnist" or "synthetic" when none of the four files exist.

    Raises FileNotFoundError when only some of the files exist, since mixing real
    and synthetic data would give meaningless numbers.
    """
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    found = {key: _find_idx_file(data_dir, name) for key, name in MNIST_FILES.items()}
    missing = [MNIST_FILES[key] for key, path in found.items() if path is None]
    if len(missing) == len(MNIST_FILES):
        log(f"data: MNIST not found in {data_dir}, using seeded synthetic data (seed {seed})")
        return "synthetic", synthetic_dataset(seed)
    if missing:
        raise FileNotFoundError(
            f"incomplete MNIST directory {data_dir}: missing {', '.join(missing)} (or their .gz versions)"
        )
    train_images, train_labels = _load_split(data_dir, MNIST_FILES["train_images"], MNIST_FILES["train_labels"])
    test_images, test_labels = _load_split(data_dir, MNIST_FILES["test_images"], MNIST_FILES["test_labels"])
    log(f"data: MNIST from {data_dir} ({len(train_labels)} train, {len(test_labels)} test images)")
    return "mnist", {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


# ---------------------------------------------------------------- weights


def random_model(seed, sizes=(IMAGE_SIZE, HIDDEN_SIZE, NUM_CLASSES)):
    """Make [(W, b), ...] with W of shape (out, in) and W, b uniform in ±1/sqrt(in), as torch.nn.Linear does."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        weight = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        bias = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        layers.append((weight, bias))
    return layers


def load_weights(path):
    """Read layers.{i}.weight and layers.{i}.bias for i = 0, 1, ... and check that they chain 784 -> ... -> 10."""
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    layers = []
    while f"layers.{len(layers)}.weight" in tensors:
        index = len(layers)
        weight_name, bias_name = f"layers.{index}.weight", f"layers.{index}.bias"
        if bias_name not in tensors:
            raise ValueError(f"{path}: {weight_name} has no matching {bias_name}")
        weight, bias = tensors[weight_name], tensors[bias_name]
        for name, tensor in ((weight_name, weight), (bias_name, bias)):
            if tensor.dtype != np.float32:
                raise ValueError(f"{path}: {name} has dtype {tensor.dtype}, expected float32")
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(
                f"{path}: {weight_name} has shape {weight.shape} and {bias_name} {bias.shape}, "
                "expected (out, in) and (out,)"
            )
        expected_in = IMAGE_SIZE if index == 0 else layers[-1][0].shape[0]
        if weight.shape[1] != expected_in:
            raise ValueError(f"{path}: {weight_name} has {weight.shape[1]} inputs, expected {expected_in}")
        layers.append((np.ascontiguousarray(weight), np.ascontiguousarray(bias)))
    if not layers:
        raise ValueError(f"{path}: no tensor named layers.0.weight")
    if layers[-1][0].shape[0] != NUM_CLASSES:
        raise ValueError(f"{path}: the last layer has {layers[-1][0].shape[0]} outputs, expected {NUM_CLASSES}")
    return layers


def save_weights(path, layers):
    from safetensors.numpy import save_file

    tensors = {}
    for index, (weight, bias) in enumerate(layers):
        tensors[f"layers.{index}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
        tensors[f"layers.{index}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))


def load_model(weights_path, seed):
    """Return (description, layers) from a safetensors file, or the seeded random model when no path is given."""
    if weights_path:
        layers = load_weights(weights_path)
        log(f"weights: {weights_path} ({describe_shape(layers)})")
        return str(weights_path), layers
    layers = random_model(seed)
    log(f"weights: seeded random model (seed {seed}, {describe_shape(layers)})")
    return f"random(seed={seed})", layers


def describe_shape(layers):
    return "-".join(str(n) for n in [layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers])


# ---------------------------------------------------------------- sweep


def pruned_counts(layers):
    """Return the number of weights zeroed at each sweep level: round-half-even(level * total weights)."""
    total = sum(weight.size for weight, _ in layers)
    # Python's round() and np.rint both round half to even, on the float64 product.
    return [int(round(level * total)) for level in SWEEP_LEVELS]


def median(values):
    return float(np.median(values)) if len(values) else None


def print_summary(result):
    print(f"impl {result['impl']}, threads {result['threads']}, data {result['data']}, weights {result['weights']}")
    for key in ("eval_ms", "sweep_ms", "train_epoch_ms"):
        if result[key]:
            runs = ", ".join(f"{t:.1f}" for t in result[key])
            print(f"{key}: median {median(result[key]):.1f} (runs: {runs})")
    if result["sweep"]:
        print("level  pruned  mean_llr      accuracy  mean_kl     flip_rate")
        sweep = result["sweep"]
        for i, level in enumerate(sweep["levels"]):
            print(
                f"{level:<5}  {sweep['pruned'][i]:>6}  {sweep['mean_llr'][i]:<12.6g}  {sweep['accuracy'][i]:<8.4f}  "
                f"{sweep['mean_kl'][i]:<10.4g}  {sweep['flip_rate'][i]:.4f}"
            )
    if "train_test_accuracy" in result:
        print("test accuracy per epoch: " + ", ".join(f"{a:.4f}" for a in result["train_test_accuracy"]))
