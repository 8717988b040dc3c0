//! Saving and loading [`Mlp`] weights in the safetensors format.
//!
//! Tensors are named `layers.{l}.weight` (shape `(out, in)`) and `layers.{l}.bias` (shape
//! `(out,)`), `f32` little-endian. In PyTorch, `{f"layers.{i}.weight": linear.weight for ...}`
//! passed to `safetensors.torch.save_file` writes the same layout.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::{Dense, Mlp};
use crate::error::{Error, Result};

fn safetensors_error(path: &Path, reason: impl ToString) -> Error {
    Error::Safetensors {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn to_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(f32::to_le_bytes).collect()
}

impl Mlp {
    /// Saves the weights to a safetensors file, creating parent directories.
    ///
    /// # Errors
    /// Returns [`Error::Io`] when the file cannot be written.
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| Error::io(parent, error))?;
        }
        let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (index, layer) in self.layers.iter().enumerate() {
            buffers.push((
                format!("layers.{index}.weight"),
                layer.weight.shape().to_vec(),
                to_bytes(layer.weight.iter().copied()),
            ));
            buffers.push((
                format!("layers.{index}.bias"),
                layer.bias.shape().to_vec(),
                to_bytes(layer.bias.iter().copied()),
            ));
        }
        let views = buffers
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|error| safetensors_error(path, error))
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata = HashMap::from([("format".to_string(), "crossover-mlp".to_string())]);
        safetensors::serialize_to_file(views, Some(metadata), path).map_err(|error| match error {
            safetensors::SafeTensorError::IoError(source) => Error::io(path, source),
            other => safetensors_error(path, other),
        })
    }

    /// Loads weights saved by [`Mlp::save_safetensors`] or by PyTorch with the same names.
    ///
    /// # Errors
    /// Returns [`Error::Io`] for a missing or unreadable file, and [`Error::Safetensors`] for a
    /// file that is not valid safetensors, lacks `layers.0.weight`, contains a tensor that is not
    /// `f32`, has a tensor of the wrong rank, contains tensors other than consecutive
    /// `layers.{i}.weight` and `layers.{i}.bias` (a gap in the numbering included), or a
    /// non-finite parameter. Returns the shape errors of [`Mlp::new`].
    pub fn load_safetensors(path: &Path) -> Result<Self> {
        let buffer = std::fs::read(path).map_err(|error| Error::io(path, error))?;
        let tensors = SafeTensors::deserialize(&buffer).map_err(|error| {
            safetensors_error(path, format!("not a valid safetensors file ({error})"))
        })?;
        let mut layers = Vec::new();
        loop {
            let index = layers.len();
            let weight_name = format!("layers.{index}.weight");
            let Ok(weight) = tensors.tensor(&weight_name) else {
                break;
            };
            let bias_name = format!("layers.{index}.bias");
            let bias = tensors.tensor(&bias_name).map_err(|_| {
                safetensors_error(
                    path,
                    format!("`{weight_name}` has no matching `{bias_name}`"),
                )
            })?;
            let weight = read_f32(path, &weight_name, &weight)?;
            let bias = read_f32(path, &bias_name, &bias)?;
            let (weight_shape, bias_shape) = (weight.0, bias.0);
            if weight_shape.len() != 2 || bias_shape.len() != 1 {
                return Err(safetensors_error(
                    path,
                    format!("`{weight_name}` must be 2-D and `{bias_name}` 1-D, got shapes {weight_shape:?} and {bias_shape:?}"),
                ));
            }
            let weight = Array2::from_shape_vec((weight_shape[0], weight_shape[1]), weight.1)
                .map_err(|error| safetensors_error(path, error))?;
            let layer = Dense::new(weight, Array1::from(bias.1)).map_err(|error| match error {
                Error::NonFinite {
                    what,
                    value,
                    index: flat,
                } => safetensors_error(
                    path,
                    format!("`layers.{index}.{what}` is {value} at flat index {flat}; parameters must be finite"),
                ),
                other => other,
            });
            layers.push(layer?);
        }
        if layers.is_empty() {
            return Err(safetensors_error(
                path,
                format!(
                    "no tensor named `layers.0.weight`; found {:?}",
                    tensors.names()
                ),
            ));
        }
        let expected = 2 * layers.len();
        if tensors.len() != expected {
            let mut unexpected: Vec<&str> = tensors
                .names()
                .into_iter()
                .filter(|name| !is_layer_tensor(name, layers.len()))
                .collect();
            unexpected.sort_unstable();
            return Err(safetensors_error(
                path,
                format!(
                    "unexpected tensors {unexpected:?} after {} consecutive layers; expected only `layers.{{i}}.weight` and `layers.{{i}}.bias` for i = 0, 1, ... without gaps",
                    layers.len()
                ),
            ));
        }
        Mlp::new(layers)
    }
}

/// Returns whether `name` is the weight or bias of one of the first `layer_count` layers.
fn is_layer_tensor(name: &str, layer_count: usize) -> bool {
    (0..layer_count).any(|index| {
        name == format!("layers.{index}.weight") || name == format!("layers.{index}.bias")
    })
}

fn read_f32(path: &Path, name: &str, view: &TensorView) -> Result<(Vec<usize>, Vec<f32>)> {
    if view.dtype() != Dtype::F32 {
        return Err(safetensors_error(
            path,
            format!("`{name}` has dtype {:?}; expected F32", view.dtype()),
        ));
    }
    let values = view
        .data()
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        .collect();
    Ok((view.shape().to_vec(), values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_rand::rand::rngs::StdRng;
    use ndarray_rand::rand::SeedableRng;

    #[test]
    fn safetensors_round_trip_is_exact() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested/model.safetensors");
        let network = Mlp::init(&[5, 4, 3], &mut StdRng::seed_from_u64(1)).unwrap();
        network.save_safetensors(&path).unwrap();
        assert_eq!(Mlp::load_safetensors(&path).unwrap(), network);
    }

    #[test]
    fn load_reports_missing_file() {
        let error = Mlp::load_safetensors(Path::new("no/such/model.safetensors")).unwrap_err();
        assert!(matches!(error, Error::Io { .. }));
        assert!(error.to_string().contains("no/such/model.safetensors"));
    }

    #[test]
    fn load_rejects_garbage() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("garbage.safetensors");
        std::fs::write(&path, b"definitely not safetensors").unwrap();
        assert!(matches!(
            Mlp::load_safetensors(&path),
            Err(Error::Safetensors { .. })
        ));
    }

    #[test]
    fn load_rejects_gap_in_layer_numbers() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("gap.safetensors");
        let bytes = 1.0f32.to_le_bytes();
        let view = || TensorView::new(Dtype::F32, vec![1, 1], &bytes).unwrap();
        let bias = || TensorView::new(Dtype::F32, vec![1], &bytes).unwrap();
        let tensors = [
            ("layers.0.weight", view()),
            ("layers.0.bias", bias()),
            ("layers.2.weight", view()),
            ("layers.2.bias", bias()),
        ];
        safetensors::serialize_to_file(tensors, None, &path).unwrap();
        let error = Mlp::load_safetensors(&path).unwrap_err();
        assert!(matches!(error, Error::Safetensors { .. }));
        assert!(error.to_string().contains("layers.2.weight"), "{error}");
    }

    #[test]
    fn load_names_tensor_with_nan() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nan.safetensors");
        let mut network = Mlp::init(&[3, 2], &mut StdRng::seed_from_u64(1)).unwrap();
        network.layers_mut()[0].weight_mut()[[1, 2]] = f32::NAN;
        network.save_safetensors(&path).unwrap();
        let error = Mlp::load_safetensors(&path).unwrap_err();
        assert!(error.to_string().contains("layers.0.weight"), "{error}");
        assert!(error.to_string().contains("flat index 5"), "{error}");
    }

    #[test]
    fn load_rejects_file_without_layers() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("other.safetensors");
        let bytes = 1.0f32.to_le_bytes();
        let view = TensorView::new(Dtype::F32, vec![1], &bytes).unwrap();
        safetensors::serialize_to_file([("something", view)], None, &path).unwrap();
        let error = Mlp::load_safetensors(&path).unwrap_err();
        assert!(error.to_string().contains("layers.0.weight"));
    }
}
