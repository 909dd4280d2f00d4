//! Config files in the cothority-compatible layout: `private.toml` (the node's keys, mode 0600),
//! `public.toml` / roster files (`[[servers]]`), the local `overrides.toml`, and the default OS paths.
//! Loading checks every field and every proof of possession, naming the file and field on error.

mod address;
mod fields;
pub mod limits;
mod overrides;
#[cfg(feature = "runtime")]
pub mod paths;
mod private;
mod roster;

pub use address::NodeAddress;
pub use limits::Limits;
pub use overrides::{AddressOverrides, Route};
pub use private::{NodeConfig, SkipchainLinks, COSI_SERVICE};
pub use roster::{MissingServiceKey, Roster, ServerIdentity, ServicePublic};

use std::path::PathBuf;

/// Why a config file could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: not valid TOML: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: field `{field}`: {reason}")]
    Field { file: PathBuf, field: String, reason: String },
    #[error("{file}: is readable by group or others (mode {mode:03o}); it holds secret keys, run `chmod 600 {file}`")]
    Permissions { file: PathBuf, mode: u32 },
    #[error("{file}: already exists; refusing to overwrite it")]
    Exists { file: PathBuf },
    #[error("{file}: cannot write: {source}")]
    Write { file: PathBuf, source: std::io::Error },
}

impl ConfigError {
    pub(crate) fn field(file: &std::path::Path, field: impl Into<String>, reason: impl ToString) -> Self {
        ConfigError::Field { file: file.to_path_buf(), field: field.into(), reason: reason.to_string() }
    }
}

/// Writes `contents` to `path` atomically (temp file + rename) with the given unix mode.
/// Refuses to replace an existing file unless `overwrite` is set.
pub fn write_file_atomic(
    path: &std::path::Path,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), ConfigError> {
    use std::io::Write;
    if !overwrite && path.exists() {
        return Err(ConfigError::Exists { file: path.to_path_buf() });
    }
    let werr = |source| ConfigError::Write { file: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(werr)?;
        }
    }
    let tmp = path.with_extension("tmp~");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(werr)?;
    #[cfg(unix)]
    {
        // The mode given at creation is filtered by the umask, and an existing temp file keeps its
        // mode: set it explicitly.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(werr)?;
    }
    f.write_all(contents).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(werr)?;
    Ok(())
}
