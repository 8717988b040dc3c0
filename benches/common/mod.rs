//! Data and model shared by the benchmarks.

#![allow(dead_code)]

use crossover::data::{load_mnist_or_synthetic, resolve_mnist_dir, DataKind, Dataset};
use crossover::mlp::Mlp;
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;

/// MNIST from `$MNIST_DIR` (else `data/mnist`) when present, else seeded synthetic data of the
/// same shape. Prints which to stderr; the benchmark names carry it too.
pub fn data() -> (DataKind, Dataset, Dataset) {
    let directory = resolve_mnist_dir(None);
    let (kind, train, test) = load_mnist_or_synthetic(&directory, 0).unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(1)
    });
    eprintln!(
        "data: {} ({} train, {} test samples) from {}",
        kind.name(),
        train.len(),
        test.len(),
        directory.display()
    );
    (kind, train, test)
}

/// The seeded random 784-128-10 network that `timings --save-weights` writes.
pub fn network() -> Mlp {
    Mlp::init(&[784, 128, 10], &mut StdRng::seed_from_u64(0)).expect("valid sizes")
}
