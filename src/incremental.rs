//! Incremental magnitude-pruning sweeps: every level of a sweep from one pass over the inputs.
//!
//! Global magnitude pruning ranks the weights once, and level `l` zeroes the first `k_l` of the
//! ranking, so the masks are nested. Sort the distinct counts `K_0 = 0 < K_1 < ... < K_{m-1}`
//! and put each first-layer weight of rank `r` into bucket `b(r) = #{i : K_i <= r}`. The weight
//! survives count `K_i` exactly when `b(r) > i`. With `C_b[s, j] = sum_{p : b(j, p) = b}
//! x[s, p] W[j, p]`, the first layer's pre-activations at count `K_i` are
//!
//! `H_i[s, j] = sum_{b > i} C_b[s, j]`,
//!
//! that is, the pre-activations of the previous count minus the contributions of the newly
//! pruned weights. [`IncrementalPruningSweep`] computes every `C_b` in one pass over the inputs,
//! sixteen samples per SIMD vector, and forms each `H_i` as a suffix sum of the buckets. The later
//! layers (for the 784-128-10 MNIST network, the 128 x 10 output layer) are evaluated densely at
//! every level with their pruned weights.
//!
//! Rounding: each `H_i` is a fresh sum of at most `m + 1` bucket sums, each a sum of `f32`
//! products, so its rounding error is that of one dense `f32` evaluation with a different
//! summation order. Nothing is subtracted repeatedly, so the error does not grow along the sweep
//! and no refresh from a dense pass is needed. The dense re-evaluation, [`Sweep::run`] with
//! [`GlobalMagnitudePruning`], stays the reference. The tests check that both agree on MNIST
//! and give identical results where `f32` arithmetic is exact.
//!
//! Memory: the logits of every level, `levels x samples x classes` `f32` values (9.6 MB for 24
//! levels, 10,000 samples and 10 classes), then their `f64` log-probabilities (19.2 MB). Rayon
//! computes the log-probabilities of all levels in parallel, and the metrics are then recorded
//! in level order. Besides, the masked weights of the later layers for every level, and per
//! thread the first layer's weights of the inputs that are non-zero in its chunk.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::metric::check_labels;
use crate::mlp::kernel::{fma_available, multiply_add};
use crate::mlp::Mlp;
use crate::model::{log_softmax, Model};
use crate::perturb::{pruning_count, GlobalMagnitudePruning, Perturbation};
use crate::sweep::{Sweep, SweepResult, SweepRow};

/// Samples per SIMD vector: sixteen `f32` lanes, one AVX-512 register or two AVX2 registers.
const LANES: usize = 16;

/// Samples per parallel task.
const CHUNK_ROWS: usize = 64 * LANES;

/// Outputs of a later layer accumulated together, as independent FMA chains.
const GROUP: usize = 4;

/// A global magnitude pruning sweep of an [`Mlp`] evaluated incrementally; see the module docs.
///
/// [`IncrementalPruningSweep::run`] returns the same [`SweepResult`] as [`Sweep::run`] with the
/// same pruner, up to `f32` rounding of the logits.
#[derive(Default)]
pub struct IncrementalPruningSweep {
    sweep: Sweep,
    pruner: GlobalMagnitudePruning,
}

impl IncrementalPruningSweep {
    /// Creates a sweep that records the metrics of `sweep` for the masks of `pruner`.
    pub fn new(sweep: Sweep, pruner: GlobalMagnitudePruning) -> Self {
        IncrementalPruningSweep { sweep, pruner }
    }

    /// Prunes `network` at every level and records every metric, in the order of `levels`.
    ///
    /// The reference log-probabilities are those of the unpruned network computed by the same
    /// kernels, so level 0 gives an LLR of exactly 0. `on_level` is called after each row.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] for no levels or an empty batch, [`Error::InvalidParameter`] for
    /// a level outside `[0, 1]`, [`Error::ShapeMismatch`] for a wrong input width or label
    /// count, [`Error::LabelOutOfRange`] for a bad label, [`Error::NonFinite`] for non-finite
    /// logits, and the errors of [`crate::sweep::Recorder::record`].
    pub fn run(
        &self,
        network: &Mlp,
        levels: &[f64],
        inputs: &Array2<f32>,
        labels: &[usize],
        mut on_level: impl FnMut(&SweepRow),
    ) -> Result<SweepResult> {
        if levels.is_empty() {
            return Err(Error::Empty("list of sweep levels"));
        }
        for &level in levels {
            self.pruner.check_level(level)?;
        }
        network.check_inputs(inputs.view())?;
        if labels.len() != inputs.nrows() {
            return Err(Error::shape("labels", &[inputs.nrows()], &[labels.len()]));
        }
        check_labels(labels, network.n_classes())?;

        let ranking = self.pruner.ranking(network);
        let level_counts = levels
            .iter()
            .map(|&level| pruning_count(level, ranking.len()))
            .collect::<Result<Vec<_>>>()?;
        if levels.len() >= usize::from(u16::MAX) {
            return Err(Error::invalid_parameter(
                "number of sweep levels",
                levels.len(),
                "fewer than 65535 levels",
            ));
        }
        let plan = Plan::new(network, &ranking, &level_counts);
        let all_logits = plan.evaluate(inputs.view());

        let mut log_probs: Vec<Option<Array2<f64>>> = (0..plan.counts.len())
            .into_par_iter()
            .map(|count_index| log_softmax(plan.logits_at(&all_logits, count_index).view()))
            .map(|result| result.map(Some))
            .collect::<Result<_>>()?;
        drop(all_logits);

        let reference = log_probs[0]
            .take()
            .expect("count 0 is the first distinct count");
        let mut recorder = self.sweep.recorder(self.pruner.name(), reference, labels)?;
        let reference = recorder.reference().to_owned();
        for (&level, &count) in levels.iter().zip(&level_counts) {
            let count_index = plan.count_index(count);
            let perturbed = if count_index == 0 {
                reference.view()
            } else {
                log_probs[count_index]
                    .as_ref()
                    .expect("every count is evaluated")
                    .view()
            };
            let row = recorder.record(level, perturbed)?;
            on_level(row);
        }
        recorder.finish()
    }
}

/// Bucketed weights and per-level masked copies of one network for one set of pruning counts.
struct Plan {
    /// Distinct pruning counts, ascending, starting with 0.
    counts: Vec<usize>,
    in_features: usize,
    hidden: usize,
    classes: usize,
    /// First-layer inputs of each hidden unit, sorted by (bucket, input), `(hidden, in)`.
    first_inputs: Vec<u32>,
    /// First-layer weights in the order of `first_inputs`.
    first_weights: Vec<f32>,
    /// Start of every bucket of every hidden unit in the sorted lists, `(hidden, buckets + 1)`.
    first_offsets: Vec<u32>,
    /// First-layer bias at every count, `(counts, hidden)`.
    first_bias: Vec<f32>,
    /// Later layers at every count: transposed weights `(in, padded out)` and bias (padded out),
    /// index `[count][layer]`; outputs are padded with zeros to a multiple of [`GROUP`].
    later: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    /// Widths of the later layers' inputs and outputs.
    later_sizes: Vec<(usize, usize)>,
}

impl Plan {
    fn new(network: &Mlp, ranking: &[(usize, bool, usize)], level_counts: &[usize]) -> Self {
        let mut counts: Vec<usize> = level_counts.iter().copied().chain([0]).collect();
        counts.sort_unstable();
        counts.dedup();
        let bucket_of_rank = |rank: usize| counts.partition_point(|&count| count <= rank) as u16;

        let layers = network.layers();
        let mut weight_buckets: Vec<Vec<u16>> = layers
            .iter()
            .map(|layer| vec![u16::MAX; layer.weight().len()])
            .collect();
        let mut bias_buckets: Vec<Vec<u16>> = layers
            .iter()
            .map(|layer| vec![u16::MAX; layer.bias().len()])
            .collect();
        for (rank, &(layer, is_bias, flat)) in ranking.iter().enumerate() {
            let target = if is_bias {
                &mut bias_buckets[layer]
            } else {
                &mut weight_buckets[layer]
            };
            target[flat] = bucket_of_rank(rank);
        }
        // u16::MAX marks parameters that are never pruned (biases unless included).
        let survives = |bucket: u16, count_index: usize| bucket as usize > count_index;

        let first = &layers[0];
        let n_buckets = counts.len() + 1;
        let in_features = first.in_features();
        let mut first_inputs = Vec::with_capacity(first.weight().len());
        let mut first_weights = Vec::with_capacity(first.weight().len());
        let mut first_offsets = Vec::with_capacity(first.out_features() * (n_buckets + 1));
        for (j, row) in first.weight().rows().into_iter().enumerate() {
            let buckets = &weight_buckets[0][j * in_features..(j + 1) * in_features];
            let mut order: Vec<u32> = (0..in_features as u32).collect();
            order.sort_by_key(|&k| (buckets[k as usize], k));
            let start = first_inputs.len() as u32;
            let mut position = 0;
            for bucket in 0..=n_buckets {
                first_offsets.push(start + position as u32);
                while position < order.len()
                    && usize::from(buckets[order[position] as usize]) == bucket
                {
                    position += 1;
                }
            }
            first_weights.extend(order.iter().map(|&k| row[k as usize]));
            first_inputs.extend(order);
        }
        let first_bias: Vec<f32> = (0..counts.len())
            .flat_map(|index| {
                first
                    .bias()
                    .iter()
                    .zip(&bias_buckets[0])
                    .map(move |(&bias, &bucket)| if survives(bucket, index) { bias } else { 0.0 })
            })
            .collect();
        let later_sizes: Vec<(usize, usize)> = layers[1..]
            .iter()
            .map(|layer| (layer.in_features(), layer.out_features()))
            .collect();
        let later = (0..counts.len())
            .map(|index| {
                layers
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(layer_index, layer)| {
                        let weight = layer.weight();
                        let buckets = &weight_buckets[layer_index];
                        let columns = weight.ncols();
                        let padded = weight.nrows().next_multiple_of(GROUP);
                        let mut transposed = vec![0.0f32; columns * padded];
                        for ((row, column), &value) in weight.indexed_iter() {
                            if survives(buckets[row * columns + column], index) {
                                transposed[column * padded + row] = value;
                            }
                        }
                        let mut bias: Vec<f32> = layer
                            .bias()
                            .iter()
                            .zip(&bias_buckets[layer_index])
                            .map(
                                |(&bias, &bucket)| if survives(bucket, index) { bias } else { 0.0 },
                            )
                            .collect();
                        bias.resize(padded, 0.0);
                        (transposed, bias)
                    })
                    .collect()
            })
            .collect();
        Plan {
            in_features: first.in_features(),
            hidden: first.out_features(),
            classes: network.n_classes(),
            first_inputs,
            first_weights,
            first_offsets,
            first_bias,
            later,
            later_sizes,
            counts,
        }
    }

    /// Returns the position of `count` in the distinct counts.
    fn count_index(&self, count: usize) -> usize {
        self.counts
            .binary_search(&count)
            .expect("every level's count is among the distinct counts")
    }

    /// Computes the logits of every sample at every count, laid out `[sample][count][class]`.
    fn evaluate(&self, inputs: ArrayView2<f32>) -> Vec<f32> {
        let inputs = inputs.as_standard_layout();
        let inputs = inputs
            .as_slice()
            .expect("a standard-layout array is contiguous");
        let per_sample = self.counts.len() * self.classes;
        let mut all_logits = vec![0.0f32; inputs.len() / self.in_features * per_sample];
        let fused = fma_available();
        #[cfg(target_arch = "x86_64")]
        let wide = fused && std::arch::is_x86_feature_detected!("avx512f");
        all_logits
            .par_chunks_mut(CHUNK_ROWS * per_sample)
            .zip(inputs.par_chunks(CHUNK_ROWS * self.in_features))
            .for_each_init(Scratch::default, |scratch, (output, inputs)| {
                #[cfg(target_arch = "x86_64")]
                {
                    if wide {
                        // SAFETY: the CPU has AVX-512F, checked before the loop.
                        unsafe { self.evaluate_chunk_avx512(inputs, output, scratch) };
                        return;
                    }
                    if fused {
                        // SAFETY: fma_available() checked that the CPU has AVX2 and FMA.
                        unsafe { self.evaluate_chunk_fma(inputs, output, scratch) };
                        return;
                    }
                }
                let _ = fused;
                self.evaluate_chunk::<false>(inputs, output, scratch);
            });
        all_logits
    }

    /// Copies the logits at one count out of the `[sample][count][class]` layout.
    fn logits_at(&self, all_logits: &[f32], count_index: usize) -> Array2<f32> {
        let per_sample = self.counts.len() * self.classes;
        let samples = all_logits.len() / per_sample;
        let offset = count_index * self.classes;
        let mut values = Vec::with_capacity(samples * self.classes);
        for sample in all_logits.chunks_exact(per_sample) {
            values.extend_from_slice(&sample[offset..offset + self.classes]);
        }
        Array2::from_shape_vec((samples, self.classes), values)
            .expect("the buffer has samples x classes values")
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn evaluate_chunk_avx512(
        &self,
        inputs: &[f32],
        output: &mut [f32],
        scratch: &mut Scratch,
    ) {
        self.evaluate_chunk::<true>(inputs, output, scratch);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn evaluate_chunk_fma(&self, inputs: &[f32], output: &mut [f32], scratch: &mut Scratch) {
        self.evaluate_chunk::<true>(inputs, output, scratch);
    }

    #[inline(always)]
    fn evaluate_chunk<const FUSED: bool>(
        &self,
        inputs: &[f32],
        output: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let rows = inputs.len() / self.in_features;
        let n_counts = self.counts.len();
        let n_buckets = n_counts + 1;
        let widest = self
            .later_sizes
            .iter()
            .map(|&(_, out)| out.next_multiple_of(GROUP))
            .max()
            .unwrap_or(0)
            .max(self.hidden);
        scratch.transposed.resize(self.in_features, [0.0; LANES]);
        scratch.buckets.resize(n_buckets, [0.0; LANES]);
        scratch.hidden.resize(n_counts * self.hidden, [0.0; LANES]);
        scratch.current.resize(widest, [0.0; LANES]);
        scratch.next.resize(widest, [0.0; LANES]);
        self.filter_inputs(inputs, scratch);

        for block_start in (0..rows).step_by(LANES) {
            let lanes = LANES.min(rows - block_start);
            for (k, vector) in scratch.transposed.iter_mut().enumerate() {
                *vector = [0.0; LANES];
                for (lane, value) in vector.iter_mut().enumerate().take(lanes) {
                    *value = inputs[(block_start + lane) * self.in_features + k];
                }
            }

            self.first_layer_block::<FUSED>(scratch);

            for count_index in 0..n_counts {
                self.later_forward_block::<FUSED>(count_index, scratch);
                for lane in 0..lanes {
                    let start = ((block_start + lane) * n_counts + count_index) * self.classes;
                    for (class, target) in
                        output[start..start + self.classes].iter_mut().enumerate()
                    {
                        *target = scratch.current[class][lane];
                    }
                }
            }
        }
    }

    /// Keeps, for every hidden unit and bucket, only the inputs that are non-zero somewhere in
    /// the chunk; the skipped inputs contribute exactly zero.
    fn filter_inputs(&self, inputs: &[f32], scratch: &mut Scratch) {
        scratch.active.clear();
        scratch.active.resize(self.in_features, false);
        for row in inputs.chunks_exact(self.in_features) {
            for (active, &x) in scratch.active.iter_mut().zip(row) {
                *active |= x != 0.0;
            }
        }
        let n_offsets = self.counts.len() + 2;
        scratch.inputs.clear();
        scratch.weights.clear();
        scratch.offsets.clear();
        for j in 0..self.hidden {
            let offsets = &self.first_offsets[j * n_offsets..(j + 1) * n_offsets];
            for bucket in offsets.windows(2) {
                scratch.offsets.push(scratch.inputs.len() as u32);
                for position in bucket[0] as usize..bucket[1] as usize {
                    let k = self.first_inputs[position];
                    if scratch.active[k as usize] {
                        scratch.inputs.push(k);
                        scratch.weights.push(self.first_weights[position]);
                    }
                }
                // Pad to whole groups of four with zero weights, which add exactly nothing.
                while scratch.inputs.len() % 4 != 0 {
                    scratch.inputs.push(0);
                    scratch.weights.push(0.0);
                }
            }
            scratch.offsets.push(scratch.inputs.len() as u32);
        }
    }

    /// Fills `scratch.hidden[count][j]` with the first layer's activations at every count.
    #[inline(always)]
    fn first_layer_block<const FUSED: bool>(&self, scratch: &mut Scratch) {
        let n_counts = self.counts.len();
        let n_offsets = n_counts + 2;
        let single_layer = self.later_sizes.is_empty();
        for j in 0..self.hidden {
            let offsets = &scratch.offsets[j * n_offsets..(j + 1) * n_offsets];
            for (bucket, range) in offsets.windows(2).enumerate() {
                let range = range[0] as usize..range[1] as usize;
                scratch.buckets[bucket] = dot_lanes::<FUSED>(
                    &scratch.inputs[range.clone()],
                    &scratch.weights[range],
                    &scratch.transposed,
                );
            }
            let mut running = [0.0f32; LANES];
            for count_index in (0..n_counts).rev() {
                for (total, &part) in running.iter_mut().zip(&scratch.buckets[count_index + 1]) {
                    *total += part;
                }
                let bias = self.first_bias[count_index * self.hidden + j];
                let target = &mut scratch.hidden[count_index * self.hidden + j];
                for (value, &total) in target.iter_mut().zip(&running) {
                    let pre_activation = total + bias;
                    *value = if single_layer {
                        pre_activation
                    } else {
                        pre_activation.max(0.0)
                    };
                }
            }
        }
    }

    /// Runs the later layers at one count on `scratch.hidden`, leaving the logits in
    /// `scratch.current`.
    #[inline(always)]
    fn later_forward_block<const FUSED: bool>(&self, count_index: usize, scratch: &mut Scratch) {
        let hidden = &scratch.hidden[count_index * self.hidden..(count_index + 1) * self.hidden];
        scratch.current[..self.hidden].copy_from_slice(hidden);
        let last = self.later_sizes.len();
        for (layer_index, (&(in_features, out_features), (weight, bias))) in self
            .later_sizes
            .iter()
            .zip(&self.later[count_index])
            .enumerate()
        {
            let padded = out_features.next_multiple_of(GROUP);
            for group in (0..padded).step_by(GROUP) {
                let mut sums: [[f32; LANES]; GROUP] =
                    std::array::from_fn(|g| [bias[group + g]; LANES]);
                for (input, x) in scratch.current[..in_features].iter().enumerate() {
                    let weights = &weight[input * padded + group..input * padded + group + GROUP];
                    for (sum, &w) in sums.iter_mut().zip(weights) {
                        *sum = lanes_multiply_add::<FUSED>(*x, w, *sum);
                    }
                }
                let relu = layer_index + 1 < last;
                for (target, sum) in scratch.next[group..group + GROUP].iter_mut().zip(sums) {
                    *target = if relu {
                        sum.map(|value| value.max(0.0))
                    } else {
                        sum
                    };
                }
            }
            std::mem::swap(&mut scratch.current, &mut scratch.next);
        }
    }
}

/// Returns `sum_i weights[i] * x[inputs[i]]` lane by lane, in four interleaved partial sums
/// that hide the FMA latency. The lists have a multiple of four entries.
#[inline(always)]
fn dot_lanes<const FUSED: bool>(
    inputs: &[u32],
    weights: &[f32],
    x: &[[f32; LANES]],
) -> [f32; LANES] {
    let mut partial = [[0.0f32; LANES]; 4];
    for (group, weight_group) in inputs.chunks_exact(4).zip(weights.chunks_exact(4)) {
        for ((sum, &k), &w) in partial.iter_mut().zip(group).zip(weight_group) {
            *sum = lanes_multiply_add::<FUSED>(x[k as usize], w, *sum);
        }
    }
    let mut total = [0.0f32; LANES];
    for (lane, value) in total.iter_mut().enumerate() {
        *value = (partial[0][lane] + partial[1][lane]) + (partial[2][lane] + partial[3][lane]);
    }
    total
}

/// Returns `x * weight + sums` lane by lane.
#[inline(always)]
fn lanes_multiply_add<const FUSED: bool>(
    x: [f32; LANES],
    weight: f32,
    mut sums: [f32; LANES],
) -> [f32; LANES] {
    for (sum, value) in sums.iter_mut().zip(x) {
        *sum = multiply_add::<FUSED>(value, weight, *sum);
    }
    sums
}

/// Per-thread buffers, each entry one SIMD vector of `LANES` samples.
#[derive(Default)]
struct Scratch {
    transposed: Vec<[f32; LANES]>,
    active: Vec<bool>,
    inputs: Vec<u32>,
    weights: Vec<f32>,
    offsets: Vec<u32>,
    buckets: Vec<[f32; LANES]>,
    hidden: Vec<[f32; LANES]>,
    current: Vec<[f32; LANES]>,
    next: Vec<[f32; LANES]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Dense;
    use crate::sweep::default_pruning_levels;
    use approx::assert_relative_eq;
    use ndarray::Array1;
    use ndarray_rand::rand::rngs::StdRng;
    use ndarray_rand::rand::{Rng, SeedableRng};
    use proptest::prelude::*;

    /// A network whose weights are multiples of 1/64 and inputs whose values are multiples of
    /// 1/8, small enough that every `f32` product and sum is exact, so both sweeps must agree
    /// bit for bit. The coarse grid also makes many magnitudes equal, which tests tie-breaking.
    fn exact_fixture(sizes: &[usize], samples: usize, seed: u64) -> (Mlp, Array2<f32>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut grid = |range: i32, scale: f32| rng.random_range(-range..=range) as f32 / scale;
        let layers = sizes
            .windows(2)
            .map(|pair| {
                let weight = Array2::from_shape_simple_fn((pair[1], pair[0]), || grid(16, 64.0));
                let bias = Array1::from_shape_simple_fn(pair[1], || grid(16, 64.0));
                Dense::new(weight, bias).unwrap()
            })
            .collect();
        let network = Mlp::new(layers).unwrap();
        let inputs = Array2::from_shape_simple_fn((samples, sizes[0]), || {
            let value = grid(8, 8.0);
            // About half the inputs are zero, as in images.
            if value < 0.0 {
                0.0
            } else {
                value
            }
        });
        let labels = (0..samples)
            .map(|index| index % sizes[sizes.len() - 1])
            .collect();
        (network, inputs, labels)
    }

    #[test]
    fn incremental_matches_dense_sweep_exactly() {
        let (network, inputs, labels) = exact_fixture(&[30, 12, 5], 70, 1);
        let levels = default_pruning_levels();
        let pruner = GlobalMagnitudePruning::default();
        let dense = Sweep::default()
            .run(&network, &pruner, &levels, &inputs, &labels, |_| {})
            .unwrap();
        let incremental = IncrementalPruningSweep::default()
            .run(&network, &levels, &inputs, &labels, |_| {})
            .unwrap();
        assert_eq!(incremental, dense);
    }

    #[test]
    fn incremental_handles_biases_deep_and_single_layer_networks() {
        for sizes in [&[9usize, 4][..], &[20, 7, 6, 3][..]] {
            let (network, inputs, labels) = exact_fixture(sizes, 19, 2);
            let levels = [0.0, 0.3, 0.3, 0.9, 0.1, 1.0];
            let pruner = GlobalMagnitudePruning {
                include_biases: true,
            };
            let dense = Sweep::default()
                .run(&network, &pruner, &levels, &inputs, &labels, |_| {})
                .unwrap();
            let incremental = IncrementalPruningSweep::new(Sweep::default(), pruner)
                .run(&network, &levels, &inputs, &labels, |_| {})
                .unwrap();
            assert_eq!(incremental, dense, "sizes {sizes:?}");
        }
    }

    #[test]
    fn incremental_rejects_bad_levels_and_labels() {
        let (network, inputs, mut labels) = exact_fixture(&[6, 4, 3], 5, 3);
        let sweep = IncrementalPruningSweep::default();
        assert!(matches!(
            sweep.run(&network, &[], &inputs, &labels, |_| {}),
            Err(Error::Empty(_))
        ));
        assert!(matches!(
            sweep.run(&network, &[0.5, 1.5], &inputs, &labels, |_| {}),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            sweep.run(&network, &[0.5], &inputs, &labels[..4], |_| {}),
            Err(Error::ShapeMismatch { .. })
        ));
        labels[2] = 3;
        assert!(matches!(
            sweep.run(&network, &[0.5], &inputs, &labels, |_| {}),
            Err(Error::LabelOutOfRange {
                label: 3,
                index: 2,
                ..
            })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn incremental_agrees_with_dense_on_random_networks(
            seed in 0u64..10_000,
            hidden in 1usize..40,
            samples in 1usize..40,
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let network = Mlp::init(&[25, hidden, 4], &mut rng).unwrap();
            let inputs = Array2::from_shape_simple_fn((samples, 25), || rng.random_range(0.0f32..1.0));
            let labels: Vec<usize> = (0..samples).map(|_| rng.random_range(0..4)).collect();
            let levels = default_pruning_levels();
            let dense = Sweep::default()
                .run(&network, &GlobalMagnitudePruning::default(), &levels, &inputs, &labels, |_| {})
                .unwrap();
            let incremental = IncrementalPruningSweep::default()
                .run(&network, &levels, &inputs, &labels, |_| {})
                .unwrap();
            prop_assert_eq!(incremental.levels(), dense.levels());
            for metric in ["mean_llr", "total_llr", "mean_kl"] {
                let expected = dense.column(metric).unwrap();
                for (got, want) in incremental.column(metric).unwrap().iter().zip(&expected) {
                    prop_assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{}: {} vs {}", metric, got, want);
                }
            }
            assert_relative_eq!(incremental.reference_accuracy, dense.reference_accuracy);
        }
    }
}
