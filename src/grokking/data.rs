//! Modular-arithmetic data: every pair `(a, b)` with `a, b` in `0..p`, labelled `(a op b) mod p`,
//! split at random into a training and a test set.

use ndarray_rand::rand::seq::SliceRandom;
use ndarray_rand::rand::Rng;
use serde::Serialize;

use crate::error::{Error, Result};

/// The binary operation whose result modulo `p` is the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `(a + b) mod p`.
    Add,
    /// `(a - b) mod p`, in `0..p`.
    Subtract,
    /// `(a * b) mod p`.
    Multiply,
}

impl Operation {
    /// Computes `(a op b) mod modulus` for operands already below `modulus`.
    pub fn apply(self, a: usize, b: usize, modulus: usize) -> usize {
        match self {
            Operation::Add => (a + b) % modulus,
            Operation::Subtract => (a + modulus - b) % modulus,
            Operation::Multiply => (a * b) % modulus,
        }
    }

    /// Returns the operator symbol, for titles and reports.
    pub fn symbol(self) -> &'static str {
        match self {
            Operation::Add => "+",
            Operation::Subtract => "-",
            Operation::Multiply => "*",
        }
    }
}

/// Operand pairs `[a, b]` and their labels, in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModularSplit {
    /// One `[a, b]` per sample.
    pub pairs: Vec<[usize; 2]>,
    /// The label `(a op b) mod p` of each pair.
    pub labels: Vec<usize>,
}

impl ModularSplit {
    /// Returns the number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Returns `true` when the split has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// All `p * p` pairs of one modular operation, split into training and test samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModularDataset {
    /// The modulus `p`, which is also the number of operand values and of classes.
    pub modulus: usize,
    /// The operation that defines the labels.
    pub operation: Operation,
    /// The training pairs.
    pub train: ModularSplit,
    /// The held-out pairs: every pair not in `train`.
    pub test: ModularSplit,
}

impl ModularDataset {
    /// Builds every pair `(a, b)` with `a, b` in `0..modulus` once, shuffles them with `rng` and
    /// puts the first `round(train_fraction * modulus^2)` into the training split.
    ///
    /// # Errors
    /// Returns [`Error::InvalidParameter`] when `modulus` is below 2 and when `train_fraction`
    /// leaves the training or the test split empty.
    pub fn new<R: Rng + ?Sized>(
        modulus: usize,
        operation: Operation,
        train_fraction: f64,
        rng: &mut R,
    ) -> Result<Self> {
        if modulus < 2 {
            return Err(Error::invalid_parameter(
                "modulus",
                modulus,
                "at least 2, for example 97",
            ));
        }
        let total = modulus
            .checked_mul(modulus)
            .filter(|&total| total <= u32::MAX as usize)
            .ok_or_else(|| {
                Error::invalid_parameter(
                    "modulus",
                    modulus,
                    "a modulus whose pair count modulus^2 is below 2^32, for example 97",
                )
            })?;
        let train_count = if train_fraction.is_finite() {
            (train_fraction * total as f64).round()
        } else {
            f64::NAN
        };
        if !(train_count >= 1.0 && train_count < total as f64) {
            return Err(Error::invalid_parameter(
                "training fraction",
                train_fraction,
                format!(
                    "a fraction that leaves at least one of the {total} pairs in each split, \
                     for example 0.3"
                ),
            ));
        }
        let train_count = train_count as usize;

        let mut pairs: Vec<[usize; 2]> = (0..modulus)
            .flat_map(|a| (0..modulus).map(move |b| [a, b]))
            .collect();
        pairs.shuffle(rng);
        let test_pairs = pairs.split_off(train_count);
        let split = |pairs: Vec<[usize; 2]>| {
            let labels = pairs
                .iter()
                .map(|&[a, b]| operation.apply(a, b, modulus))
                .collect();
            ModularSplit { pairs, labels }
        };
        Ok(ModularDataset {
            modulus,
            operation,
            train: split(pairs),
            test: split(test_pairs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_rand::rand::rngs::StdRng;
    use ndarray_rand::rand::SeedableRng;

    #[test]
    fn operations_wrap_modulo() {
        assert_eq!(Operation::Add.apply(5, 4, 7), 2);
        assert_eq!(Operation::Subtract.apply(2, 5, 7), 4);
        assert_eq!(Operation::Subtract.apply(5, 2, 7), 3);
        assert_eq!(Operation::Multiply.apply(3, 5, 7), 1);
    }

    #[test]
    fn dataset_rejects_modulus_with_too_many_pairs() {
        let mut rng = StdRng::seed_from_u64(0);
        let error = ModularDataset::new(1 << 32, Operation::Add, 0.3, &mut rng).unwrap_err();
        assert!(error.to_string().contains("modulus"), "{error}");
    }

    #[test]
    fn dataset_rejects_empty_splits() {
        let mut rng = StdRng::seed_from_u64(0);
        for fraction in [0.0, 1.0, f64::NAN, -0.5] {
            let error = ModularDataset::new(5, Operation::Add, fraction, &mut rng).unwrap_err();
            assert!(
                matches!(error, Error::InvalidParameter { .. }),
                "{fraction}"
            );
        }
        assert!(ModularDataset::new(1, Operation::Add, 0.5, &mut rng).is_err());
    }

    #[test]
    fn dataset_split_depends_on_seed() {
        let first = ModularDataset::new(7, Operation::Add, 0.5, &mut StdRng::seed_from_u64(1));
        let again = ModularDataset::new(7, Operation::Add, 0.5, &mut StdRng::seed_from_u64(1));
        let other = ModularDataset::new(7, Operation::Add, 0.5, &mut StdRng::seed_from_u64(2));
        assert_eq!(first.as_ref().unwrap(), again.as_ref().unwrap());
        assert_ne!(first.unwrap().train, other.unwrap().train);
    }
}
