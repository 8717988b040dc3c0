//! How long does one dense evaluation of the 784-128-10 MLP take on 10,000 MNIST-shaped inputs
//! (forward pass, f64 log-softmax, per-sample LLR against reference log-probabilities)?

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use crossover::metric::{llr_per_sample, Evaluation};
use crossover::model::Model;
use std::hint::black_box;

fn eval(c: &mut Criterion) {
    let (kind, _, test) = common::data();
    let network = common::network();
    let reference = network.log_probs(&test.images).unwrap();
    let mut group = c.benchmark_group(format!("eval/{}", kind.name()));
    group.bench_function("logits", |b| {
        b.iter(|| network.logits(black_box(test.images.view())).unwrap())
    });
    group.bench_function("log-probs and mean LLR", |b| {
        b.iter(|| {
            let log_probs = network.log_probs(black_box(&test.images)).unwrap();
            let evaluation =
                Evaluation::new(reference.view(), log_probs.view(), &test.labels).unwrap();
            llr_per_sample(&evaluation).sum() / test.len() as f64
        })
    });
    group.bench_function("ndarray dot (matrixmultiply), first layer", |b| {
        let weight = network.layers()[0].weight();
        b.iter(|| black_box(test.images.view()).dot(&weight.t()))
    });
    group.finish();
}

criterion_group!(benches, eval);
criterion_main!(benches);
