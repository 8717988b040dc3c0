//! How long does one training epoch of the 784-128-10 MLP take (60,000 MNIST-shaped samples,
//! Adam at learning rate 1e-3, batch 64)?

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use crossover::optim::Optimizer;
use crossover::train::{train, TrainConfig};
use std::time::Duration;

fn epoch(c: &mut Criterion) {
    let (kind, train_set, _) = common::data();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 64,
        optimizer: Optimizer::adam(1e-3),
        seed: 0,
    };
    let mut group = c.benchmark_group(format!("train/{}", kind.name()));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("one Adam epoch, batch 64", |b| {
        b.iter_batched(
            common::network,
            |mut network| {
                train(
                    &mut network,
                    train_set.images.view(),
                    &train_set.labels,
                    &config,
                    |_| {},
                )
                .unwrap()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, epoch);
criterion_main!(benches);
