//! The incremental pruning sweep against the dense re-evaluation, on MNIST with a trained model.

use crossover::data::{ensure_mnist, load_mnist, resolve_mnist_dir, Split};
use crossover::incremental::IncrementalPruningSweep;
use crossover::mlp::Mlp;
use crossover::perturb::GlobalMagnitudePruning;
use crossover::sweep::{default_pruning_levels, Sweep};
use crossover::train::{train, TrainConfig};
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;

#[test]
fn incremental_sweep_matches_dense_on_mnist() {
    let directory = resolve_mnist_dir(None);
    ensure_mnist(&directory).expect("MNIST is available or can be fetched");
    let train_set = load_mnist(&directory, Split::Train).unwrap();
    let test_set = load_mnist(&directory, Split::Test).unwrap();

    // The default recipe: ten epochs of SGD at learning rate 0.1, batch 64.
    let mut network = Mlp::init(&[784, 128, 10], &mut StdRng::seed_from_u64(0)).unwrap();
    train(
        &mut network,
        train_set.images.view(),
        &train_set.labels,
        &TrainConfig::default(),
        |_| {},
    )
    .unwrap();

    let levels = default_pruning_levels();
    let dense = Sweep::default()
        .run(
            &network,
            &GlobalMagnitudePruning::default(),
            &levels,
            &test_set.images,
            &test_set.labels,
            |_| {},
        )
        .unwrap();
    let incremental = IncrementalPruningSweep::default()
        .run(
            &network,
            &levels,
            &test_set.images,
            &test_set.labels,
            |_| {},
        )
        .unwrap();

    assert!(
        dense.reference_accuracy > 0.96,
        "{}",
        dense.reference_accuracy
    );
    assert_eq!(incremental.levels(), dense.levels());
    assert_eq!(incremental.reference_accuracy, dense.reference_accuracy);
    let pairs = |metric: &str| {
        let got = incremental.column(metric).unwrap();
        let want = dense.column(metric).unwrap();
        got.into_iter().zip(want).zip(&levels)
    };
    for ((got, want), level) in pairs("mean_llr") {
        assert!(
            (got - want).abs() < 1e-4,
            "mean LLR at {level}: {got} vs {want}"
        );
    }
    for ((got, want), level) in pairs("mean_kl") {
        assert!(
            (got - want).abs() < 1e-4,
            "mean KL at {level}: {got} vs {want}"
        );
    }
    // Rounding may flip a prediction whose two largest logits are within about 1e-6.
    for ((got, want), level) in pairs("accuracy") {
        assert!(
            (got - want).abs() <= 2e-4,
            "accuracy at {level}: {got} vs {want}"
        );
    }
}
