//! Integration tests of the grokking experiment: data, model, optimizer steps, training and
//! crossover extraction.

use std::collections::HashSet;

use approx::assert_relative_eq;
use crossover::crossover::Direction;
use crossover::grokking::{
    analyze, epochs_csv, grokking_summary, grokking_thresholds, train_grokking, EmbeddingMlp,
    EpochStats, GrokkingConfig, GrokkingRun, ModularDataset, Operation, Reference,
};
use crossover::model::{log_softmax, Model};
use crossover::optim::OptimizerState;
use crossover::sweep::{SweepResult, SweepRow};
use crossover::Error;
use ndarray::Array2;
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::SeedableRng;
use serde_json::{json, Map};

fn no_early_stop(max_epochs: usize) -> GrokkingConfig {
    GrokkingConfig {
        max_epochs,
        stop_accuracy: None,
        ..GrokkingConfig::default()
    }
}

#[test]
fn dataset_has_every_pair_once() {
    for operation in [Operation::Add, Operation::Subtract, Operation::Multiply] {
        let expected = |a: usize, b: usize| match operation {
            Operation::Add => (a + b) % 13,
            Operation::Subtract => (a + 13 - b) % 13,
            Operation::Multiply => (a * b) % 13,
        };
        let data = ModularDataset::new(13, operation, 0.3, &mut StdRng::seed_from_u64(4)).unwrap();
        // round(0.3 * 169) = 51
        assert_eq!(data.train.len(), 51);
        assert_eq!(data.test.len(), 169 - 51);
        assert_eq!(data.train.labels.len(), data.train.pairs.len());
        assert_eq!(data.test.labels.len(), data.test.pairs.len());
        let all: HashSet<[usize; 2]> = data
            .train
            .pairs
            .iter()
            .chain(&data.test.pairs)
            .copied()
            .collect();
        assert_eq!(all.len(), 169, "a pair is missing or repeated");
        assert!(all.iter().all(|pair| pair[0] < 13 && pair[1] < 13));
        for split in [&data.train, &data.test] {
            for (&[a, b], &label) in split.pairs.iter().zip(&split.labels) {
                assert_eq!(label, expected(a, b), "{operation:?} of {a} and {b}");
            }
        }
    }
}

#[test]
fn dataset_split_is_shuffled() {
    let data = ModularDataset::new(31, Operation::Add, 0.5, &mut StdRng::seed_from_u64(0)).unwrap();
    // An unshuffled split would put only pairs with a < 16 into training.
    assert!(data.train.pairs.iter().any(|pair| pair[0] >= 16));
    assert!(data.test.pairs.iter().any(|pair| pair[0] < 15));
}

#[test]
fn embedding_sum_matches_one_hot_product() {
    let (modulus, hidden) = (7, 12);
    let network = EmbeddingMlp::init(modulus, hidden, &mut StdRng::seed_from_u64(8)).unwrap();
    let pairs: Vec<[usize; 2]> = (0..modulus)
        .flat_map(|a| (0..modulus).map(move |b| [a, b]))
        .collect();
    let mut one_hot = Array2::<f32>::zeros((pairs.len(), 2 * modulus));
    for (row, &[a, b]) in pairs.iter().enumerate() {
        one_hot[[row, a]] = 1.0;
        one_hot[[row, modulus + b]] = 1.0;
    }
    let first = network.first_layer();
    assert_eq!(first.shape(), &[hidden, 2 * modulus]);
    let hidden_activations = one_hot.dot(&first.t()).mapv(|value| value.max(0.0));
    let logits = hidden_activations.dot(&network.output().t());
    let expected = log_softmax(logits.view()).unwrap();
    let actual = network.log_probs(&pairs).unwrap();
    assert_eq!(actual.shape(), expected.shape());
    for (actual, expected) in actual.iter().zip(&expected) {
        assert_relative_eq!(*actual, *expected, epsilon = 1e-5);
    }
}

#[test]
fn adamw_matches_hand_computed_steps() {
    // Three AdamW steps of the grokking recipe (lr 1e-2, betas 0.9 and 0.98, eps 1e-8, weight
    // decay 1.0) worked out in f64: decay first, then the bias-corrected Adam step.
    let optimizer = GrokkingConfig::default().optimizer;
    let mut state = OptimizerState::new(optimizer, 3);
    let mut parameters = [0.5f32, -1.0, 0.25];
    let gradients = [[0.2f64, -0.1, 0.0], [0.1, 0.3, 0.0], [-0.4, 0.3, 1e-3]];
    let mut expected = [0.5f64, -1.0, 0.25];
    let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
    for (step, gradient) in gradients.iter().enumerate() {
        let t = step as i32 + 1;
        for i in 0..3 {
            expected[i] *= 1.0 - 1e-2 * 1.0;
            m[i] = 0.9 * m[i] + 0.1 * gradient[i];
            v[i] = 0.98 * v[i] + 0.02 * gradient[i] * gradient[i];
            let m_hat = m[i] / (1.0 - 0.9f64.powi(t));
            let v_hat = v[i] / (1.0 - 0.98f64.powi(t));
            expected[i] -= 1e-2 * m_hat / (v_hat.sqrt() + 1e-8);
        }
        state
            .step(&mut parameters, &gradient.map(|value| value as f32))
            .unwrap();
        if t == 1 {
            // The first step is lr * g / (|g| + eps) after the decay, and a zero gradient only
            // decays.
            assert_relative_eq!(expected[0], 0.5 * 0.99 - 0.01, epsilon = 1e-9);
            assert_relative_eq!(expected[1], -0.99 + 0.01, epsilon = 1e-9);
            assert_relative_eq!(expected[2], 0.25 * 0.99, epsilon = 1e-12);
        }
        for i in 0..3 {
            assert_relative_eq!(f64::from(parameters[i]), expected[i], epsilon = 1e-6);
        }
    }
}

/// Mean training cross-entropy in f64 of a network on the training split.
fn training_loss(network: &EmbeddingMlp, data: &ModularDataset) -> f64 {
    let log_probs = network.log_probs(&data.train.pairs).unwrap();
    -data
        .train
        .labels
        .iter()
        .enumerate()
        .map(|(row, &label)| log_probs[[row, label]])
        .sum::<f64>()
        / data.train.len() as f64
}

#[test]
fn first_step_follows_gradient_sign() {
    let data = ModularDataset::new(7, Operation::Add, 0.5, &mut StdRng::seed_from_u64(1)).unwrap();
    let start = EmbeddingMlp::init(7, 6, &mut StdRng::seed_from_u64(2)).unwrap();
    let mut stepped = start.clone();
    let run = train_grokking(&mut stepped, &data, &no_early_stop(1), |_| {}).unwrap();
    assert_eq!(run.last_epoch, 1);

    // The first bias-corrected Adam step is lr * g / (|g| + eps), so after the decay w (1 - lr)
    // every weight with a clear gradient moves by lr against the sign of its gradient.
    let first_before = start.first_layer();
    let first_after = stepped.first_layer();
    let mut checked = 0;
    for row in 0..first_before.nrows() {
        for column in 0..first_before.ncols() {
            let shifted = |delta: f32| {
                let mut first = first_before.clone();
                first[[row, column]] += delta;
                EmbeddingMlp::from_first_layer(first.view(), start.output().clone()).unwrap()
            };
            let delta = 1e-3f32;
            let gradient = (training_loss(&shifted(delta), &data)
                - training_loss(&shifted(-delta), &data))
                / (2.0 * f64::from(delta));
            if gradient.abs() < 1e-3 {
                continue;
            }
            let before = f64::from(first_before[[row, column]]);
            let expected = before * (1.0 - 1e-2) - 1e-2 * gradient.signum();
            assert_relative_eq!(
                f64::from(first_after[[row, column]]),
                expected,
                epsilon = 1e-6
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} weights had a clear gradient");
}

#[test]
fn short_training_memorizes_small_modulus() {
    let mut rng = StdRng::seed_from_u64(3);
    let data = ModularDataset::new(13, Operation::Add, 0.5, &mut rng).unwrap();
    let mut network = EmbeddingMlp::init(13, 64, &mut rng).unwrap();
    let config = GrokkingConfig {
        against_init: true,
        ..no_early_stop(150)
    };
    let mut evaluated = Vec::new();
    let run = train_grokking(&mut network, &data, &config, |stats| {
        evaluated.push(stats.epoch)
    })
    .unwrap();
    assert_eq!(evaluated, (0..=150).collect::<Vec<_>>());
    let memorized = run
        .memorization_epoch
        .expect("150 epochs memorize 84 pairs");
    assert!(memorized > 0);
    assert_eq!(run.reference_epoch, Some(memorized));
    let before = &run.history[memorized - 1];
    let at = &run.history[memorized];
    assert!(before.train_accuracy < 1.0);
    assert_eq!(at.train_accuracy, 1.0);
    assert!(run.history[150].train_loss < run.history[0].train_loss);

    let sweep = run.against_reference.as_ref().unwrap();
    assert_eq!(sweep.levels().first(), Some(&(memorized as f64)));
    assert_eq!(sweep.levels().last(), Some(&150.0));
    assert_eq!(sweep.column("mean_llr").unwrap()[0], 0.0);
    assert_eq!(sweep.reference_accuracy, at.test_accuracy);
    let init = run.against_init.as_ref().unwrap();
    assert_eq!(init.rows.len(), 151);
    // The recorded accuracy is the test accuracy of the same epoch.
    let accuracy = init.column("accuracy").unwrap();
    for (stats, recorded) in run.history.iter().zip(&accuracy) {
        assert_eq!(stats.test_accuracy, *recorded);
    }
    // The trained network classifies every training pair, through the Model trait too.
    assert_eq!(
        network
            .accuracy(&data.train.pairs, &data.train.labels)
            .unwrap(),
        1.0
    );
}

#[test]
fn eval_every_thins_but_keeps_reference_and_last() {
    let mut rng = StdRng::seed_from_u64(3);
    let data = ModularDataset::new(13, Operation::Add, 0.5, &mut rng).unwrap();
    let mut network = EmbeddingMlp::init(13, 64, &mut rng).unwrap();
    let config = GrokkingConfig {
        eval_every: 20,
        reference: Reference::Epoch(33),
        ..no_early_stop(95)
    };
    let run = train_grokking(&mut network, &data, &config, |_| {}).unwrap();
    let epochs: Vec<usize> = run.history.iter().map(|stats| stats.epoch).collect();
    assert_eq!(epochs, [0, 20, 33, 40, 60, 80, 95]);
    assert_eq!(
        run.against_reference.unwrap().levels(),
        [33.0, 40.0, 60.0, 80.0, 95.0]
    );
    assert!(run.against_init.is_none());
}

#[test]
fn training_rejects_mismatched_modulus() {
    let data = ModularDataset::new(11, Operation::Add, 0.5, &mut StdRng::seed_from_u64(0)).unwrap();
    let mut network = EmbeddingMlp::init(7, 8, &mut StdRng::seed_from_u64(0)).unwrap();
    let error = train_grokking(&mut network, &data, &no_early_stop(5), |_| {}).unwrap_err();
    assert!(matches!(error, Error::ShapeMismatch { .. }), "{error}");
    assert!(error.to_string().contains("modulus"), "{error}");
}

/// Builds a run with a hand-made history and metric series. It memorizes at epoch 10, the mean
/// LLR dips below -1 at epoch 20 and climbs above +1 at 40, accuracy changes at 50, and test
/// accuracy reaches 90% at 60.
fn synthetic_run() -> GrokkingRun {
    let epochs = [0usize, 10, 20, 30, 40, 50, 60, 70];
    let test_accuracy = [0.01, 0.02, 0.015, 0.02, 0.025, 0.2, 0.92, 0.99];
    let mean_llr = [f64::NAN, 0.0, -1.2, -0.3, 1.5, 3.0, 6.0, 7.0];
    let mean_kl = [f64::NAN, 0.0, 0.4, 0.8, 1.1, 2.0, 4.0, 5.0];
    let history = epochs
        .iter()
        .zip(&test_accuracy)
        .map(|(&epoch, &test_accuracy)| EpochStats {
            epoch,
            train_loss: 1.0 / (1.0 + epoch as f64),
            train_accuracy: if epoch >= 10 { 1.0 } else { 0.5 },
            test_loss: 5.0,
            test_accuracy,
        })
        .collect();
    let rows = (1..epochs.len())
        .map(|index| SweepRow {
            level: epochs[index] as f64,
            values: vec![
                test_accuracy[index],
                mean_llr[index],
                1000.0 * mean_llr[index],
                mean_kl[index],
            ],
        })
        .collect();
    GrokkingRun {
        history,
        memorization_epoch: Some(10),
        reference_epoch: Some(10),
        against_reference: Some(SweepResult {
            perturbation: "training".into(),
            level_name: "epoch".into(),
            metric_names: ["accuracy", "mean_llr", "total_llr", "mean_kl"]
                .map(String::from)
                .to_vec(),
            rows,
            reference_accuracy: 0.02,
            n_samples: 1000,
        }),
        against_init: None,
        last_epoch: 70,
    }
}

#[test]
fn crossovers_of_synthetic_series() {
    let run = synthetic_run();
    let analysis = analyze(&run, &grokking_thresholds(), 0.9).unwrap();
    assert_eq!(analysis.memorization_epoch, Some(10));
    assert_eq!(analysis.grokking_epoch, Some(60));
    assert_eq!(analysis.final_test_accuracy, 0.99);
    let crossovers = analysis.crossovers.unwrap();
    assert_eq!(crossovers.core.accuracy.first, Some(50.0));
    assert_eq!(crossovers.core.per_sample_llr.first, Some(20.0));
    assert_eq!(crossovers.llr_negative.first, Some(20.0));
    assert_eq!(crossovers.llr_positive.first, Some(40.0));
    assert_eq!(crossovers.kl.first, Some(40.0));
    assert_eq!(crossovers.core.population_llr.first, Some(20.0));
    assert_eq!(crossovers.core.direction, Direction::InformationFirst);
    let leads = analysis.leads().unwrap();
    assert_eq!(leads.per_sample_llr, Some(30.0));
    assert_eq!(leads.llr_positive, Some(10.0));
    assert_eq!(leads.kl, Some(10.0));
}

#[test]
fn summary_has_documented_keys() {
    let run = synthetic_run();
    let thresholds = grokking_thresholds();
    let analysis = analyze(&run, &thresholds, 0.9).unwrap();
    let mut extra = Map::new();
    extra.insert("seed".into(), json!(7));
    let summary = grokking_summary(&run, &analysis, &thresholds, extra);
    assert_eq!(summary["memorization_epoch"], json!(10));
    assert_eq!(summary["grokking_epoch"], json!(60));
    assert_eq!(summary["crossovers"]["accuracy"], json!(50.0));
    assert_eq!(summary["crossovers"]["per_sample_llr"], json!(20.0));
    assert_eq!(summary["crossovers"]["llr_positive"], json!(40.0));
    assert_eq!(summary["crossovers"]["llr_negative"], json!(20.0));
    assert_eq!(summary["crossovers"]["kl"], json!(40.0));
    assert_eq!(summary["crossovers_sustained"]["llr_negative"], json!(null));
    assert_eq!(summary["direction"], json!("information-first"));
    assert_eq!(summary["lead_epochs"], json!(30.0));
    assert_eq!(summary["thresholds"]["accuracy_rule"], json!("change"));
    assert_eq!(summary["seed"], json!(7));
    assert!(summary.get("levels").is_none());
}

#[test]
fn summary_without_reference_is_all_null() {
    let mut run = synthetic_run();
    run.memorization_epoch = None;
    run.reference_epoch = None;
    run.against_reference = None;
    let thresholds = grokking_thresholds();
    let analysis = analyze(&run, &thresholds, 0.9).unwrap();
    let summary = grokking_summary(&run, &analysis, &thresholds, Map::new());
    assert_eq!(summary["memorization_epoch"], json!(null));
    assert_eq!(summary["crossovers"]["accuracy"], json!(null));
    assert_eq!(summary["crossovers"]["kl"], json!(null));
    assert_eq!(summary["direction"], json!("neither"));
    assert_eq!(summary["lead_epochs"], json!(null));
}

#[test]
fn epochs_csv_leaves_cells_before_reference_empty() {
    let text = epochs_csv(&synthetic_run());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,train_loss,train_accuracy,test_loss,test_accuracy,mean_llr,total_llr,mean_kl"
    );
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[1], "0,1,0.5,5,0.01,,,");
    assert_eq!(lines[3], "20,0.047619047619047616,1,5,0.015,-1.2,-1200,0.4");
}

#[test]
fn quick_preset_groks_information_first() {
    // The example's --quick preset: (a + b) mod 59, training fraction 0.4, seed 0.
    let mut rng = StdRng::seed_from_u64(0);
    let data = ModularDataset::new(59, Operation::Add, 0.4, &mut rng).unwrap();
    let mut network = EmbeddingMlp::init(59, 256, &mut rng).unwrap();
    let run = train_grokking(&mut network, &data, &GrokkingConfig::default(), |_| {}).unwrap();
    let analysis = analyze(&run, &grokking_thresholds(), 0.9).unwrap();
    let memorized = analysis.memorization_epoch.unwrap();
    let grokked = analysis.grokking_epoch.unwrap();
    assert!(memorized < 200, "memorized at {memorized}");
    assert!(
        grokked > 3 * memorized,
        "grokked at {grokked}, memorized at {memorized}"
    );
    assert!(analysis.final_test_accuracy >= 0.95);
    let crossovers = analysis.crossovers.unwrap();
    assert_eq!(crossovers.core.direction, Direction::InformationFirst);
    assert!(analysis.leads().unwrap().per_sample_llr.unwrap() > 0.0);
}
