//! Reader for IDX files, the format of the MNIST distribution.
//!
//! An IDX file is a header followed by the data, all integers big-endian:
//!
//! | bytes            | content                                                   |
//! |------------------|-----------------------------------------------------------|
//! | 0..2             | two zero bytes                                            |
//! | 2                | data type code (`0x08` = unsigned byte)                   |
//! | 3                | number of dimensions `d`                                  |
//! | 4..4 + 4d        | size of each dimension as a `u32`, outermost first        |
//! | 4 + 4d..         | the items in row-major order, one byte each for `0x08`    |
//!
//! MNIST image files have three dimensions (count, rows, columns) and label files have one
//! (count). Only type `0x08` is supported because it is the only type MNIST uses.
//!
//! A file may be stored raw or gzip-compressed. Compression is detected from the gzip magic
//! bytes `0x1f 0x8b` at the start of the file, not from the file name.
//!
//! Every reader here rejects a file that declares zero items with [`Error::InvalidFile`],
//! because an empty data set cannot be used for training or evaluation.

use std::io::Read;
use std::path::Path;

use ndarray::Array2;

use crate::error::{Error, Result};

/// First two bytes of every gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// IDX data type code for unsigned bytes.
const TYPE_UNSIGNED_BYTE: u8 = 0x08;

/// Length of the fixed part of the header: two zero bytes, the type code and the dimension count.
const MAGIC_LEN: usize = 4;

/// Contents of an IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// Items in row-major order, as many as the product of `dims`.
    pub data: Vec<u8>,
}

/// Images read from a three-dimensional IDX file.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// Pixels with shape `(count, rows * cols)`, each byte divided by 255 into `[0, 1]`.
    pub pixels: Array2<f32>,
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
}

/// Reads an IDX file of unsigned bytes, raw or gzip-compressed.
///
/// # Errors
///
/// - [`Error::Io`] with the path when the file cannot be read, for example when it is missing.
/// - [`Error::InvalidFile`] with the path when the content is not a valid IDX file of unsigned
///   bytes. The reasons are a corrupt gzip stream, a wrong magic number, a data type other than
///   `0x08`, dimension sizes whose product overflows `usize`, zero items, and data shorter or
///   longer than the header declares.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file_bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if file_bytes.starts_with(&GZIP_MAGIC) {
        decompress_gzip(&file_bytes, path)?
    } else {
        file_bytes
    };
    parse_idx(bytes, path)
}

/// Reads a three-dimensional IDX file of images and scales each byte to `[0, 1]` by dividing
/// it by 255.
///
/// # Errors
///
/// - Every error of [`read_idx`].
/// - [`Error::InvalidFile`] with the path when the file does not have exactly three dimensions.
pub fn read_images(path: &Path) -> Result<Images> {
    let array = read_idx(path)?;
    let [count, rows, cols] = array.dims[..] else {
        return Err(Error::invalid_file(
            path,
            format!(
                "expected 3 dimensions (count, rows, columns) for images, found {} with sizes {:?}",
                array.dims.len(),
                array.dims
            ),
        ));
    };
    // `parse_idx` rejects overflow and zero sizes, so this product is exact and nonzero.
    let features = rows * cols;
    let scaled: Vec<f32> = array.data.iter().map(|&b| f32::from(b) / 255.0).collect();
    let pixels = Array2::from_shape_vec((count, features), scaled)
        .map_err(|e| Error::invalid_file(path, format!("failed to shape the image data: {e}")))?;
    Ok(Images { pixels, rows, cols })
}

/// Reads a one-dimensional IDX file of labels.
///
/// The values are not range-checked here, because the number of classes depends on the data
/// set.
///
/// # Errors
///
/// - Every error of [`read_idx`].
/// - [`Error::InvalidFile`] with the path when the file does not have exactly one dimension.
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let array = read_idx(path)?;
    if array.dims.len() != 1 {
        return Err(Error::invalid_file(
            path,
            format!(
                "expected 1 dimension (count) for labels, found {} with sizes {:?}",
                array.dims.len(),
                array.dims
            ),
        ));
    }
    Ok(array.data.iter().map(|&b| usize::from(b)).collect())
}

/// Decompresses a whole gzip file held in memory, including files of several gzip members.
fn decompress_gzip(compressed: &[u8], path: &Path) -> Result<Vec<u8>> {
    let mut decompressed = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .read_to_end(&mut decompressed)
        .map_err(|e| Error::invalid_file(path, format!("corrupt gzip data: {e}")))?;
    Ok(decompressed)
}

/// Parses the header of an uncompressed IDX file and checks the data length against it.
fn parse_idx(mut bytes: Vec<u8>, path: &Path) -> Result<IdxArray> {
    let Some(&[zero0, zero1, type_code, ndims]) = bytes.first_chunk::<MAGIC_LEN>() else {
        return Err(Error::invalid_file(
            path,
            format!(
                "file is {} bytes long, shorter than the {MAGIC_LEN}-byte IDX magic number",
                bytes.len()
            ),
        ));
    };
    if zero0 != 0 || zero1 != 0 {
        return Err(Error::invalid_file(
            path,
            format!(
                "invalid IDX magic number 0x{zero0:02x}{zero1:02x}{type_code:02x}{ndims:02x}: \
                 expected 0x0000 followed by the type code 0x08 and the dimension count"
            ),
        ));
    }
    if type_code != TYPE_UNSIGNED_BYTE {
        return Err(Error::invalid_file(
            path,
            format!(
                "unsupported IDX data type 0x{type_code:02x} ({}); only 0x08 (unsigned byte) is supported",
                type_name(type_code)
            ),
        ));
    }

    let header_len = MAGIC_LEN + 4 * usize::from(ndims);
    let Some(dim_bytes) = bytes.get(MAGIC_LEN..header_len) else {
        return Err(Error::invalid_file(
            path,
            format!(
                "truncated header: {ndims} dimensions need {header_len} header bytes, \
                 but the file has {} bytes",
                bytes.len()
            ),
        ));
    };
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|chunk| u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize)
        .collect();

    let item_count = dims
        .iter()
        .try_fold(1usize, |product, &dim| product.checked_mul(dim))
        .ok_or_else(|| {
            Error::invalid_file(
                path,
                format!("the product of the dimension sizes {dims:?} overflows usize"),
            )
        })?;
    if item_count == 0 {
        return Err(Error::invalid_file(
            path,
            format!("file contains no items (dimension sizes {dims:?})"),
        ));
    }

    let data_len = bytes.len() - header_len;
    if data_len < item_count {
        return Err(Error::invalid_file(
            path,
            format!(
                "truncated data: dimension sizes {dims:?} need {item_count} bytes after the \
                 {header_len}-byte header, but the file has {data_len}"
            ),
        ));
    }
    if data_len > item_count {
        return Err(Error::invalid_file(
            path,
            format!(
                "{} trailing bytes: dimension sizes {dims:?} need {item_count} bytes after the \
                 {header_len}-byte header, but the file has {data_len}",
                data_len - item_count
            ),
        ));
    }

    bytes.drain(..header_len);
    Ok(IdxArray { dims, data: bytes })
}

/// Returns the name of an IDX data type code, for error messages.
fn type_name(type_code: u8) -> &'static str {
    match type_code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "16-bit integer",
        0x0c => "32-bit integer",
        0x0d => "32-bit float",
        0x0e => "64-bit float",
        _ => "not an IDX type",
    }
}

/// Helpers that build IDX files for the unit tests of this module and its siblings.
#[cfg(test)]
pub(crate) mod test_files {
    use std::io::Write;
    use std::path::Path;

    /// Returns the bytes of an unsigned-byte IDX file with the given dimensions and data.
    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let ndims = u8::try_from(dims.len()).expect("test IDX files have at most 255 dimensions");
        let mut bytes = vec![0, 0, 0x08, ndims];
        for dim in dims {
            bytes.extend_from_slice(&dim.to_be_bytes());
        }
        bytes.extend_from_slice(data);
        bytes
    }

    /// Returns `bytes` compressed as one gzip member.
    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("writing to a Vec succeeds");
        encoder.finish().expect("writing to a Vec succeeds")
    }

    /// Returns the pixel bytes of `count` 28x28 images, where pixel `p` of image `i` is
    /// `(i * 100 + p) % 256`, so every image differs and every byte value occurs.
    pub(crate) fn image_pixels(count: usize) -> Vec<u8> {
        (0..count)
            .flat_map(|i| (0..28 * 28).map(move |p| ((i * 100 + p) % 256) as u8))
            .collect()
    }

    /// Writes a 28x28 image file with `count` images from [`image_pixels`].
    pub(crate) fn write_images(path: &Path, count: u32) {
        let bytes = idx_bytes(&[count, 28, 28], &image_pixels(count as usize));
        std::fs::write(path, bytes).expect("writing into a temporary directory succeeds");
    }

    /// Writes a label file with the given labels.
    pub(crate) fn write_labels(path: &Path, labels: &[u8]) {
        let count = u32::try_from(labels.len()).expect("test label counts fit in u32");
        std::fs::write(path, idx_bytes(&[count], labels))
            .expect("writing into a temporary directory succeeds");
    }
}

#[cfg(test)]
mod tests {
    use super::test_files::{gzip, idx_bytes, image_pixels, write_images, write_labels};
    use super::*;

    /// Writes `bytes` to `name` in `dir` and returns the path.
    fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Returns the reason of an `InvalidFile` error after checking that it names `path`.
    fn invalid_file_reason(result: Result<impl std::fmt::Debug>, path: &Path) -> String {
        let error = result.expect_err("reading must fail");
        assert!(
            matches!(error, Error::InvalidFile { .. }),
            "expected InvalidFile, got {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "message {message:?} does not name {}",
            path.display()
        );
        message
    }

    #[test]
    fn read_images_three_images() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images");
        write_images(&path, 3);

        let images = read_images(&path).unwrap();

        assert_eq!(images.rows, 28);
        assert_eq!(images.cols, 28);
        assert_eq!(images.pixels.dim(), (3, 784));
        let expected = image_pixels(3);
        for (index, (&pixel, &byte)) in images.pixels.iter().zip(&expected).enumerate() {
            assert_eq!(pixel, f32::from(byte) / 255.0, "pixel {index}");
        }
        assert_eq!(images.pixels[[0, 0]], 0.0);
        assert_eq!(images.pixels[[0, 255]], 1.0);
        assert_eq!(images.pixels[[2, 1]], 201.0 / 255.0);
    }

    #[test]
    fn read_labels_three_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels");
        write_labels(&path, &[7, 0, 9]);

        assert_eq!(read_labels(&path).unwrap(), vec![7, 0, 9]);
    }

    #[test]
    fn read_idx_gzip_detected_by_magic() {
        let dir = tempfile::tempdir().unwrap();
        let raw = idx_bytes(&[3, 28, 28], &image_pixels(3));
        let raw_path = write_file(dir.path(), "raw", &raw);
        // No `.gz` suffix, so only the magic bytes can reveal the compression.
        let gzip_path = write_file(dir.path(), "compressed", &gzip(&raw));

        assert_eq!(read_idx(&gzip_path).unwrap(), read_idx(&raw_path).unwrap());
        assert_eq!(
            read_images(&gzip_path).unwrap(),
            read_images(&raw_path).unwrap()
        );
    }

    #[test]
    fn read_labels_gzip_matches_raw() {
        let dir = tempfile::tempdir().unwrap();
        let raw = idx_bytes(&[3], &[1, 2, 3]);
        let gzip_path = write_file(dir.path(), "labels.gz", &gzip(&raw));

        assert_eq!(read_labels(&gzip_path).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn read_idx_corrupt_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let mut compressed = gzip(&idx_bytes(&[3], &[1, 2, 3]));
        compressed.truncate(compressed.len() / 2);
        let path = write_file(dir.path(), "labels", &compressed);

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("corrupt gzip"), "{reason}");
    }

    #[test]
    fn read_idx_wrong_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "page.html", b"<!DOCTYPE html><html></html>");

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("magic number 0x3c21444f"), "{reason}");
        assert!(reason.contains("expected 0x0000"), "{reason}");
    }

    #[test]
    fn read_idx_file_shorter_than_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "short", &[0, 0]);

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("2 bytes long"), "{reason}");
    }

    #[test]
    fn read_idx_unsupported_type() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = idx_bytes(&[1], &[0, 0, 0, 0]);
        bytes[2] = 0x0d;
        let path = write_file(dir.path(), "floats", &bytes);

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("0x0d"), "{reason}");
        assert!(reason.contains("32-bit float"), "{reason}");
    }

    #[test]
    fn read_idx_truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_bytes(&[3, 28, 28], &[]);
        let path = write_file(dir.path(), "images", &bytes[..10]);

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("truncated header"), "{reason}");
        assert!(reason.contains("16 header bytes"), "{reason}");
        assert!(reason.contains("has 10 bytes"), "{reason}");
    }

    #[test]
    fn read_idx_truncated_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut pixels = image_pixels(3);
        pixels.pop();
        let path = write_file(dir.path(), "images", &idx_bytes(&[3, 28, 28], &pixels));

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("truncated data"), "{reason}");
        assert!(reason.contains("need 2352 bytes"), "{reason}");
        assert!(reason.contains("has 2351"), "{reason}");
    }

    #[test]
    fn read_idx_trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "labels", &idx_bytes(&[3], &[1, 2, 3, 4, 5]));

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("2 trailing bytes"), "{reason}");
        assert!(reason.contains("need 3 bytes"), "{reason}");
        assert!(reason.contains("has 5"), "{reason}");
    }

    #[test]
    fn read_idx_dimension_product_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "huge", &idx_bytes(&[u32::MAX; 4], &[]));

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("overflows usize"), "{reason}");
    }

    #[test]
    fn read_idx_zero_items() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "images", &idx_bytes(&[0, 28, 28], &[]));

        let reason = invalid_file_reason(read_idx(&path), &path);
        assert!(reason.contains("no items"), "{reason}");
    }

    #[test]
    fn read_idx_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");

        let error = read_idx(&path).unwrap_err();

        assert!(
            matches!(&error, Error::Io { path: p, .. } if p == &path),
            "expected Io naming the path, got {error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn read_images_wrong_dimension_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "labels", &idx_bytes(&[3], &[1, 2, 3]));

        let reason = invalid_file_reason(read_images(&path), &path);
        assert!(reason.contains("expected 3 dimensions"), "{reason}");
        assert!(reason.contains("found 1"), "{reason}");
    }

    #[test]
    fn read_labels_wrong_dimension_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images");
        write_images(&path, 2);

        let reason = invalid_file_reason(read_labels(&path), &path);
        assert!(reason.contains("expected 1 dimension"), "{reason}");
        assert!(reason.contains("found 3"), "{reason}");
    }
}
