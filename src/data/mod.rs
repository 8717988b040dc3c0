//! Data sets and their loading: an IDX reader and locating and fetching MNIST.
//!
//! IDX is the format of the MNIST distribution. Each file starts with two zero bytes, a data
//! type byte (`0x08` for unsigned bytes, the only type supported here) and the number of
//! dimensions, followed by one big-endian `u32` size per dimension and then the items.
//! [`idx`] describes the layout in full.

pub mod idx;
pub mod mnist;

use std::path::Path;

use ndarray::{s, Array2};
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::{Rng, SeedableRng};
use ndarray_rand::rand_distr::Uniform;
use ndarray_rand::RandomExt;

use crate::error::{Error, Result};

pub use idx::{read_idx, read_images, read_labels, IdxArray, Images};
pub use mnist::{
    ensure_mnist, fetch_and_load_mnist, load_mnist, load_mnist_or_synthetic, missing_mnist_files,
    resolve_mnist_dir, DataKind, Split, MNIST_DIR_ENV,
};

/// Images and their class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Flattened images with shape `(samples, rows * cols)` and pixel values in `[0, 1]`.
    pub images: Array2<f32>,
    /// Class label of each image, in the order of the rows of `images`.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Reads a data set from an IDX image file and an IDX label file, each raw or gzipped.
    ///
    /// # Errors
    ///
    /// - Every error of [`read_images`] and [`read_labels`].
    /// - [`Error::InvalidFile`] naming both paths when the image count differs from the label
    ///   count.
    pub fn from_idx(images_path: &Path, labels_path: &Path) -> Result<Dataset> {
        let images = read_images(images_path)?;
        let labels = read_labels(labels_path)?;

        let image_count = images.pixels.nrows();
        if image_count != labels.len() {
            return Err(Error::invalid_file(
                images_path,
                format!(
                    "contains {image_count} images, but the label file {} contains {} labels",
                    labels_path.display(),
                    labels.len()
                ),
            ));
        }

        Ok(Dataset {
            images: images.pixels,
            labels,
        })
    }

    /// Returns the number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Returns `true` when the data set has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Returns the number of features per sample, `rows * cols` for images.
    pub fn n_features(&self) -> usize {
        self.images.ncols()
    }

    /// Makes seeded random data: features uniform in `[0, 1)` and labels uniform in
    /// `0..classes`, for benchmarks and tests that need a data set of a given shape.
    ///
    /// `classes` of 0 is treated as 1.
    pub fn synthetic(samples: usize, features: usize, classes: usize, seed: u64) -> Dataset {
        let mut rng = StdRng::seed_from_u64(seed);
        let unit = Uniform::new(0.0f32, 1.0).expect("0 < 1 is a valid range");
        let images = Array2::random_using((samples, features), unit, &mut rng);
        let labels = (0..samples)
            .map(|_| rng.random_range(0..classes.max(1)))
            .collect();
        Dataset { images, labels }
    }

    /// Returns a copy of the first `min(n, self.len())` samples.
    pub fn subset(&self, n: usize) -> Dataset {
        let count = n.min(self.len()).min(self.images.nrows());
        Dataset {
            images: self.images.slice(s![..count, ..]).to_owned(),
            labels: self.labels[..count].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::idx::test_files::{image_pixels, write_images, write_labels};
    use super::*;

    #[test]
    fn from_idx_three_samples() {
        let dir = tempfile::tempdir().unwrap();
        let images_path = dir.path().join("images");
        let labels_path = dir.path().join("labels");
        write_images(&images_path, 3);
        write_labels(&labels_path, &[5, 0, 4]);

        let dataset = Dataset::from_idx(&images_path, &labels_path).unwrap();

        assert_eq!(dataset.len(), 3);
        assert!(!dataset.is_empty());
        assert_eq!(dataset.n_features(), 784);
        assert_eq!(dataset.labels, vec![5, 0, 4]);
        let expected = image_pixels(3);
        assert_eq!(
            dataset.images[[1, 10]],
            f32::from(expected[784 + 10]) / 255.0
        );
    }

    #[test]
    fn from_idx_count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let images_path = dir.path().join("images");
        let labels_path = dir.path().join("labels");
        write_images(&images_path, 3);
        write_labels(&labels_path, &[5, 0]);

        let error = Dataset::from_idx(&images_path, &labels_path).unwrap_err();

        assert!(
            matches!(error, Error::InvalidFile { .. }),
            "expected InvalidFile, got {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&images_path.display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&labels_path.display().to_string()),
            "{message}"
        );
        assert!(message.contains("3 images"), "{message}");
        assert!(message.contains("2 labels"), "{message}");
    }

    #[test]
    fn synthetic_is_seeded_and_in_range() {
        let first = Dataset::synthetic(50, 7, 3, 9);
        assert_eq!(first, Dataset::synthetic(50, 7, 3, 9));
        assert_ne!(first, Dataset::synthetic(50, 7, 3, 10));
        assert_eq!(first.images.dim(), (50, 7));
        assert!(first.images.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert!(first.labels.iter().all(|&label| label < 3));
    }

    #[test]
    fn subset_takes_first_samples() {
        let dir = tempfile::tempdir().unwrap();
        let images_path = dir.path().join("images");
        let labels_path = dir.path().join("labels");
        write_images(&images_path, 3);
        write_labels(&labels_path, &[5, 0, 4]);
        let dataset = Dataset::from_idx(&images_path, &labels_path).unwrap();

        let first_two = dataset.subset(2);
        let all = dataset.subset(10);

        assert_eq!(first_two.labels, vec![5, 0]);
        assert_eq!(first_two.images.dim(), (2, 784));
        assert_eq!(first_two.images.row(1), dataset.images.row(1));
        assert_eq!(all, dataset);
        assert!(dataset.subset(0).is_empty());
    }
}
