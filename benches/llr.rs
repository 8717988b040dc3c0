//! How long does the LLR of 10,000 samples take, given reference and perturbed
//! log-probabilities (10,000 x 10)?

use criterion::{criterion_group, criterion_main, Criterion};
use crossover::metric::{llr_per_sample, standard_metrics, Evaluation};
use crossover::model::log_softmax;
use ndarray::Array2;
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::{Rng, SeedableRng};
use std::hint::black_box;

fn llr(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let logits = Array2::from_shape_fn((10_000, 10), |_| rng.random_range(-8.0f32..8.0));
    let shifted = logits.mapv(|z| z + rng.random_range(-0.5f32..0.5));
    let reference = log_softmax(logits.view()).expect("finite logits");
    let perturbed = log_softmax(shifted.view()).expect("finite logits");
    let labels: Vec<usize> = (0..10_000).map(|_| rng.random_range(0..10)).collect();

    c.bench_function("llr/mean of 10k samples", |b| {
        b.iter(|| {
            let evaluation =
                Evaluation::new(black_box(reference.view()), perturbed.view(), &labels).unwrap();
            llr_per_sample(&evaluation).sum() / 10_000.0
        })
    });
    let metrics = standard_metrics();
    c.bench_function("llr/all standard metrics of 10k samples", |b| {
        b.iter(|| {
            let evaluation =
                Evaluation::new(black_box(reference.view()), perturbed.view(), &labels).unwrap();
            metrics
                .iter()
                .map(|metric| metric.compute(&evaluation).unwrap())
                .sum::<f64>()
        })
    });
    c.bench_function("llr/log-softmax of 10k x 10 logits", |b| {
        b.iter(|| log_softmax(black_box(logits.view())).unwrap())
    });
}

criterion_group!(benches, llr);
criterion_main!(benches);
