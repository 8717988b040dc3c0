//! How long does a 24-level global magnitude pruning sweep of the 784-128-10 MLP over 10,000
//! MNIST-shaped inputs take, incrementally and with a dense re-evaluation per level?

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use crossover::incremental::IncrementalPruningSweep;
use crossover::perturb::GlobalMagnitudePruning;
use crossover::sweep::{default_pruning_levels, Sweep};
use std::hint::black_box;
use std::time::Duration;

fn sweep(c: &mut Criterion) {
    let (kind, _, test) = common::data();
    let network = common::network();
    let levels = default_pruning_levels();
    let mut group = c.benchmark_group(format!("sweep/{}", kind.name()));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("incremental, 24 levels", |b| {
        let sweep = IncrementalPruningSweep::default();
        b.iter(|| {
            sweep
                .run(
                    &network,
                    black_box(&levels),
                    &test.images,
                    &test.labels,
                    |_| {},
                )
                .unwrap()
        })
    });
    group.bench_function("dense re-evaluation, 24 levels", |b| {
        let sweep = Sweep::default();
        let pruner = GlobalMagnitudePruning::default();
        b.iter(|| {
            sweep
                .run(
                    &network,
                    &pruner,
                    black_box(&levels),
                    &test.images,
                    &test.labels,
                    |_| {},
                )
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, sweep);
criterion_main!(benches);
