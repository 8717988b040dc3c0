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
//! pruned weights. [`IncrementalPruningSweep`] makes one pass over the inputs, sixteen samples
//! per SIMD vector. For every hidden unit it adds the buckets from the last to the first into
//! one running sum and stores the running sum after bucket `i + 1` as `H_i`. The later layers
//! (for the 784-128-10 MNIST network, the 128 x 10 output layer) are evaluated densely at every
//! level with their pruned weights.
//!
//! Rounding: each `H_i` is one `f32` sum, in four interleaved partial sums, of the products of
//! the weights that survive count `K_i`, so its rounding error is that of one dense `f32`
//! evaluation with a different summation order. Nothing is subtracted, so the error does not
//! grow along the sweep and no refresh from a dense pass is needed. The dense re-evaluation,
//! [`Sweep::run`] with [`GlobalMagnitudePruning`], stays the reference. The tests check that
//! both agree on MNIST and give identical results where `f32` arithmetic is exact.
//!
//! Memory: the `f64` log-probabilities of every level, `levels x samples x classes` values
//! (19.2 MB for 24 levels, 10,000 samples and 10 classes). Each parallel chunk of samples turns
//! its logits into log-probabilities while they are in cache, so the logits of all levels are
//! never stored. The metrics are then recorded in level order. Besides, the masked weights of
//! the later layers for every level, and per thread the first layer's weights of the inputs that
//! are non-zero in its chunk.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::metric::check_labels;
use crate::mlp::kernel::{fma_available, multiply_add, relu};
use crate::mlp::{blame_non_finite_input, Mlp};
use crate::model::{log_softmax_row, Model};
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
    /// kernels, so level 0 gives an LLR of exactly 0. The metrics of all levels are computed in
    /// parallel, then `on_level` is called after each row, in level order.
    ///
    /// # Errors
    /// - [`Error::Empty`] for no levels or an empty batch;
    /// - [`Error::InvalidParameter`] for a level outside `[0, 1]`;
    /// - [`Error::ShapeMismatch`] for a wrong input width or label count;
    /// - [`Error::LabelOutOfRange`] for a bad label;
    /// - [`Error::NonFinite`] naming the first non-finite input (`what` is `"input"`) or, when
    ///   every input is finite, a non-finite logit;
    /// - the errors of [`crate::sweep::Recorder::record`].
    pub fn run(
        &self,
        network: &Mlp,
        levels: &[f64],
        inputs: &Array2<f32>,
        labels: &[usize],
        on_level: impl FnMut(&SweepRow),
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
        let log_probs = plan
            .evaluate(inputs.view())
            .map_err(|error| blame_non_finite_input(error, inputs.view()))?;

        let shape = (inputs.nrows(), plan.classes);
        let level_len = shape.0 * shape.1;
        let log_probs_at = |count_index: usize| {
            let start = count_index * level_len;
            ArrayView2::from_shape(shape, &log_probs[start..start + level_len])
                .expect("every count has samples x classes log-probabilities")
        };
        // Count 0 is the first distinct count, the unpruned network.
        let reference = log_probs_at(0).to_owned();
        let mut recorder = self.sweep.recorder(self.pruner.name(), reference, labels)?;
        let perturbed: Vec<(f64, ArrayView2<f64>)> = levels
            .iter()
            .zip(&level_counts)
            .map(|(&level, &count)| (level, log_probs_at(plan.count_index(count))))
            .collect();
        recorder.record_all(&perturbed, on_level)?;
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
        // A counting sort of every hidden unit's inputs by (bucket, input). Slot `n_buckets + 1`
        // collects the parameters that are never pruned, after every bucket.
        let slot_of = |bucket: u16| usize::from(bucket).min(n_buckets + 1);
        let mut order = vec![0u32; in_features];
        let mut next_position = vec![0u32; n_buckets + 2];
        for (j, row) in first.weight().rows().into_iter().enumerate() {
            let buckets = &weight_buckets[0][j * in_features..(j + 1) * in_features];
            next_position.fill(0);
            for &bucket in buckets {
                next_position[slot_of(bucket)] += 1;
            }
            let mut start = 0;
            for slot in next_position.iter_mut() {
                let size = *slot;
                *slot = start;
                start += size;
            }
            let unit_start = first_inputs.len() as u32;
            first_offsets.extend(
                next_position[..=n_buckets]
                    .iter()
                    .map(|&position| unit_start + position),
            );
            for (k, &bucket) in buckets.iter().enumerate() {
                let slot = slot_of(bucket);
                order[next_position[slot] as usize] = k as u32;
                next_position[slot] += 1;
            }
            first_weights.extend(order.iter().map(|&k| row[k as usize]));
            first_inputs.extend_from_slice(&order);
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

    /// Computes the `f64` log-probabilities of every sample at every count, laid out
    /// `[count][sample][class]`.
    ///
    /// Each chunk of samples turns its logits into log-probabilities while they are in cache,
    /// so the logits of all levels are never stored.
    ///
    /// # Errors
    /// Returns [`Error::Empty`] for a network without classes and [`Error::NonFinite`] for the
    /// first non-finite logit in chunk order. Its index is flat in the `(samples, classes)`
    /// matrix of one count.
    fn evaluate(&self, inputs: ArrayView2<f32>) -> Result<Vec<f64>> {
        if self.classes == 0 {
            return Err(Error::Empty("logit row"));
        }
        let inputs = inputs.as_standard_layout();
        let inputs = inputs
            .as_slice()
            .expect("a standard-layout array is contiguous");
        let samples = inputs.len() / self.in_features;
        let level_len = samples * self.classes;
        let chunk_len = CHUNK_ROWS * self.classes;
        let mut log_probs = vec![0.0f64; self.counts.len() * level_len];

        // Every chunk of samples gets its slice of every count's matrix.
        let mut chunk_outputs: Vec<Vec<&mut [f64]>> = (0..samples.div_ceil(CHUNK_ROWS))
            .map(|_| Vec::with_capacity(self.counts.len()))
            .collect();
        for level in log_probs.chunks_exact_mut(level_len) {
            for (outputs, part) in chunk_outputs.iter_mut().zip(level.chunks_mut(chunk_len)) {
                outputs.push(part);
            }
        }

        let fused = fma_available();
        #[cfg(target_arch = "x86_64")]
        let wide = fused && std::arch::is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let wide = false;
        let outcomes: Vec<Result<()>> = chunk_outputs
            .into_par_iter()
            .zip(inputs.par_chunks(CHUNK_ROWS * self.in_features))
            .enumerate()
            .map_init(
                Scratch::default,
                |scratch, (chunk_index, (mut outputs, inputs))| {
                    let outcome =
                        self.evaluate_chunk_dispatch(inputs, &mut outputs, scratch, fused, wide);
                    outcome.map_err(|(index, value)| Error::NonFinite {
                        what: "logit",
                        value: f64::from(value),
                        index: chunk_index * chunk_len + index,
                    })
                },
            )
            .collect();
        // The first error in chunk order, so the same error for every thread count.
        outcomes.into_iter().collect::<Result<()>>()?;
        Ok(log_probs)
    }

    /// Runs [`Plan::evaluate_chunk`] with the widest SIMD instructions the CPU has.
    fn evaluate_chunk_dispatch(
        &self,
        inputs: &[f32],
        outputs: &mut [&mut [f64]],
        scratch: &mut Scratch,
        fused: bool,
        wide: bool,
    ) -> ChunkOutcome {
        #[cfg(target_arch = "x86_64")]
        {
            if wide {
                // SAFETY: the caller checked that the CPU has AVX-512F, AVX2 and FMA.
                return unsafe { self.evaluate_chunk_avx512(inputs, outputs, scratch) };
            }
            if fused {
                // SAFETY: fma_available() checked that the CPU has AVX2 and FMA.
                return unsafe { self.evaluate_chunk_fma(inputs, outputs, scratch) };
            }
        }
        let _ = (fused, wide);
        self.evaluate_chunk::<false, 1>(inputs, outputs, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn evaluate_chunk_avx512(
        &self,
        inputs: &[f32],
        outputs: &mut [&mut [f64]],
        scratch: &mut Scratch,
    ) -> ChunkOutcome {
        self.evaluate_chunk::<true, 3>(inputs, outputs, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn evaluate_chunk_fma(
        &self,
        inputs: &[f32],
        outputs: &mut [&mut [f64]],
        scratch: &mut Scratch,
    ) -> ChunkOutcome {
        self.evaluate_chunk::<true, 1>(inputs, outputs, scratch)
    }

    /// Writes the log-probabilities of one chunk of samples at every count into
    /// `outputs[count]`, each a `(chunk samples, classes)` matrix.
    ///
    /// A later layer accumulates up to `MAX_GROUPS` groups of [`GROUP`] outputs in one pass over
    /// its inputs. Three groups (12 accumulators of 16 lanes) fit the 32 AVX-512 registers, and
    /// one group fits the 16 AVX2 registers.
    #[inline(always)]
    fn evaluate_chunk<const FUSED: bool, const MAX_GROUPS: usize>(
        &self,
        inputs: &[f32],
        outputs: &mut [&mut [f64]],
        scratch: &mut Scratch,
    ) -> ChunkOutcome {
        let rows = inputs.len() / self.in_features;
        let n_counts = self.counts.len();
        let widest = self
            .later_sizes
            .iter()
            .map(|&(_, out)| out.next_multiple_of(GROUP))
            .max()
            .unwrap_or(0)
            .max(self.hidden);
        scratch.transposed.resize(self.in_features, [0.0; LANES]);
        scratch.hidden.resize(n_counts * self.hidden, [0.0; LANES]);
        scratch.current.resize(widest, [0.0; LANES]);
        scratch.next.resize(widest, [0.0; LANES]);
        self.filter_inputs(inputs, scratch);
        let mut logits_row = vec![0.0f32; self.classes];

        for block_start in (0..rows).step_by(LANES) {
            let lanes = LANES.min(rows - block_start);
            // The first layer reads only the active inputs.
            for &k in &scratch.active_inputs {
                let k = k as usize;
                let mut vector = [0.0; LANES];
                for (lane, value) in vector.iter_mut().enumerate().take(lanes) {
                    *value = inputs[(block_start + lane) * self.in_features + k];
                }
                scratch.transposed[k] = vector;
            }

            self.first_layer_block::<FUSED>(scratch);

            for (count_index, output) in outputs.iter_mut().enumerate() {
                self.later_forward_block::<FUSED, MAX_GROUPS>(count_index, scratch);
                let logits = if self.later_sizes.is_empty() {
                    &scratch.hidden[count_index * self.hidden..(count_index + 1) * self.hidden]
                } else {
                    &scratch.current[..]
                };
                for lane in 0..lanes {
                    for (value, logit) in logits_row.iter_mut().zip(logits) {
                        *value = logit[lane];
                    }
                    let start = (block_start + lane) * self.classes;
                    log_softmax_row(&logits_row, &mut output[start..start + self.classes])
                        .map_err(|(class, value)| (start + class, value))?;
                }
            }
        }
        Ok(())
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
        scratch.active_inputs.clear();
        scratch
            .active_inputs
            .extend((0..self.in_features as u32).filter(|&k| scratch.active[k as usize]));
        let n_offsets = self.counts.len() + 2;
        // Every entry is written and kept only when its input is active, which avoids a
        // hard-to-predict branch per weight. The kept length never passes the read position.
        scratch.inputs.resize(self.first_inputs.len(), 0);
        scratch.weights.resize(self.first_weights.len(), 0.0);
        scratch.offsets.clear();
        let mut kept = 0;
        for j in 0..self.hidden {
            let offsets = &self.first_offsets[j * n_offsets..(j + 1) * n_offsets];
            for bucket in offsets.windows(2) {
                scratch.offsets.push(kept as u32);
                for position in bucket[0] as usize..bucket[1] as usize {
                    let k = self.first_inputs[position];
                    scratch.inputs[kept] = k;
                    scratch.weights[kept] = self.first_weights[position];
                    kept += usize::from(scratch.active[k as usize]);
                }
            }
            scratch.offsets.push(kept as u32);
        }
        scratch.inputs.truncate(kept);
        scratch.weights.truncate(kept);
    }

    /// Fills `scratch.hidden[count][j]` with the first layer's activations at every count.
    #[inline(always)]
    fn first_layer_block<const FUSED: bool>(&self, scratch: &mut Scratch) {
        let n_counts = self.counts.len();
        let n_offsets = n_counts + 2;
        let single_layer = self.later_sizes.is_empty();
        let Scratch {
            transposed,
            inputs,
            weights,
            offsets,
            hidden,
            ..
        } = scratch;
        for j in 0..self.hidden {
            let offsets = &offsets[j * n_offsets..(j + 1) * n_offsets];
            // Bucket `count_index + 1` contains the weights that count `count_index` prunes first.
            // Adding the buckets from the last to the first, the running sum after bucket
            // `count_index + 1` is the pre-activation at count `count_index`.
            let mut partial = [[0.0f32; LANES]; 4];
            for count_index in (0..n_counts).rev() {
                let range = offsets[count_index + 1] as usize..offsets[count_index + 2] as usize;
                // SAFETY: filter_inputs stores only input indices below `in_features`, the
                // length of `transposed`.
                unsafe {
                    accumulate_lanes::<FUSED>(
                        &inputs[range.clone()],
                        &weights[range],
                        transposed,
                        &mut partial,
                    );
                }
                let bias = self.first_bias[count_index * self.hidden + j];
                let pre_activation: [f32; LANES] = std::array::from_fn(|lane| {
                    (partial[0][lane] + partial[1][lane])
                        + (partial[2][lane] + partial[3][lane])
                        + bias
                });
                hidden[count_index * self.hidden + j] = if single_layer {
                    pre_activation
                } else {
                    pre_activation.map(relu)
                };
            }
        }
    }

    /// Runs the later layers at one count on `scratch.hidden`, leaving the logits in
    /// `scratch.current` when there is at least one later layer.
    #[inline(always)]
    fn later_forward_block<const FUSED: bool, const MAX_GROUPS: usize>(
        &self,
        count_index: usize,
        scratch: &mut Scratch,
    ) {
        let Scratch {
            hidden,
            current,
            next,
            ..
        } = scratch;
        let hidden = &hidden[count_index * self.hidden..(count_index + 1) * self.hidden];
        let last = self.later_sizes.len();
        for (layer_index, (&(in_features, out_features), (weight, bias))) in self
            .later_sizes
            .iter()
            .zip(&self.later[count_index])
            .enumerate()
        {
            let padded = out_features.next_multiple_of(GROUP);
            let layer = LaterLayer {
                inputs: if layer_index == 0 {
                    hidden
                } else {
                    &current[..in_features]
                },
                weight,
                bias,
                padded,
                apply_relu: layer_index + 1 < last,
            };
            let mut group = 0;
            while group < padded {
                let width = (padded - group).min(MAX_GROUPS * GROUP);
                let outputs = &mut next[group..group + width];
                match width / GROUP {
                    3 => layer.forward_group::<FUSED, { 3 * GROUP }>(group, outputs),
                    2 => layer.forward_group::<FUSED, { 2 * GROUP }>(group, outputs),
                    _ => layer.forward_group::<FUSED, GROUP>(group, outputs),
                }
                group += width;
            }
            std::mem::swap(current, next);
        }
    }
}

/// One later layer at one count, applied to one block of samples.
struct LaterLayer<'a> {
    /// The layer's inputs, one SIMD vector per input.
    inputs: &'a [[f32; LANES]],
    /// Transposed masked weights, `(in, padded)`.
    weight: &'a [f32],
    /// Masked bias, `padded` entries.
    bias: &'a [f32],
    /// Output count rounded up to a multiple of [`GROUP`].
    padded: usize,
    apply_relu: bool,
}

impl LaterLayer<'_> {
    /// Computes the `WIDTH` outputs starting at `group` into `outputs`, each an FMA chain over
    /// the inputs in ascending order that starts from the bias.
    #[inline(always)]
    fn forward_group<const FUSED: bool, const WIDTH: usize>(
        &self,
        group: usize,
        outputs: &mut [[f32; LANES]],
    ) {
        let mut sums: [[f32; LANES]; WIDTH] =
            std::array::from_fn(|g| [self.bias[group + g]; LANES]);
        for (row, x) in self.weight.chunks_exact(self.padded).zip(self.inputs) {
            let weights: &[f32; WIDTH] = row[group..group + WIDTH]
                .try_into()
                .expect("a group has WIDTH outputs");
            for (sum, &w) in sums.iter_mut().zip(weights) {
                *sum = lanes_multiply_add::<FUSED>(*x, w, *sum);
            }
        }
        for (target, sum) in outputs.iter_mut().zip(sums) {
            *target = if self.apply_relu { sum.map(relu) } else { sum };
        }
    }
}

/// Adds `weights[i] * x[inputs[i]]` lane by lane to four interleaved partial sums, which hide
/// the FMA latency. Entry `i` goes to partial sum `i % 4`.
///
/// # Safety
/// Every entry of `inputs` is below `x.len()`; this function does not check the bounds.
#[inline(always)]
unsafe fn accumulate_lanes<const FUSED: bool>(
    inputs: &[u32],
    weights: &[f32],
    x: &[[f32; LANES]],
    partial: &mut [[f32; LANES]; 4],
) {
    let groups = inputs.chunks_exact(4);
    let remainder = groups.remainder();
    let weight_groups = weights.chunks_exact(4);
    let weight_remainder = weight_groups.remainder();
    for (group, weight_group) in groups.zip(weight_groups) {
        for ((sum, &k), &w) in partial.iter_mut().zip(group).zip(weight_group) {
            // SAFETY: the caller guarantees `k < x.len()`.
            let vector = unsafe { *x.get_unchecked(k as usize) };
            *sum = lanes_multiply_add::<FUSED>(vector, w, *sum);
        }
    }
    for ((sum, &k), &w) in partial.iter_mut().zip(remainder).zip(weight_remainder) {
        // SAFETY: as above.
        let vector = unsafe { *x.get_unchecked(k as usize) };
        *sum = lanes_multiply_add::<FUSED>(vector, w, *sum);
    }
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

/// The result of one chunk: `Err` contains the flat index in the chunk's `(samples, classes)`
/// matrix and the value of the first non-finite logit.
type ChunkOutcome = std::result::Result<(), (usize, f32)>;

/// Per-thread buffers, each entry one SIMD vector of `LANES` samples.
#[derive(Default)]
struct Scratch {
    transposed: Vec<[f32; LANES]>,
    active: Vec<bool>,
    active_inputs: Vec<u32>,
    inputs: Vec<u32>,
    weights: Vec<f32>,
    offsets: Vec<u32>,
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
    fn incremental_matches_dense_over_several_chunks() {
        // Two whole chunks of samples and a partial one that ends inside a block of 16.
        let (network, inputs, labels) = exact_fixture(&[12, 5, 4], 2 * CHUNK_ROWS + 37, 5);
        let levels = default_pruning_levels();
        let dense = Sweep::default()
            .run(
                &network,
                &GlobalMagnitudePruning::default(),
                &levels,
                &inputs,
                &labels,
                |_| {},
            )
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

    #[test]
    fn incremental_rejects_nan_input() {
        let (network, mut inputs, labels) = exact_fixture(&[6, 4, 3], 5, 3);
        inputs[[2, 1]] = f32::NAN;
        let error = IncrementalPruningSweep::default()
            .run(&network, &[0.0, 0.5], &inputs, &labels, |_| {})
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::NonFinite {
                    what: "input",
                    index: 13,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn incremental_rejects_nan_in_a_later_chunk() {
        // Far beyond the first chunk of samples, and in a sample that is not a multiple of 16.
        let (network, mut inputs, labels) = exact_fixture(&[6, 4, 3], 3 * CHUNK_ROWS + 7, 4);
        inputs[[2 * CHUNK_ROWS + 5, 4]] = f32::NAN;
        let error = IncrementalPruningSweep::default()
            .run(
                &network,
                &default_pruning_levels(),
                &inputs,
                &labels,
                |_| {},
            )
            .unwrap_err();
        let expected = (2 * CHUNK_ROWS + 5) * 6 + 4;
        assert!(
            matches!(error, Error::NonFinite { what: "input", index, .. } if index == expected),
            "{error:?}"
        );
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
