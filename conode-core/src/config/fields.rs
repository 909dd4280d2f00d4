//! Small helpers that turn a missing or malformed TOML field into a `ConfigError::Field`.

use super::ConfigError;
use std::path::Path;

/// Reads a file and parses it as TOML into `T`, naming the file on failure.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
    parse_toml(path, &text)
}

pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text)
        .map_err(|e| ConfigError::Parse { file: path.to_path_buf(), message: e.to_string().trim().replace('\n', " ") })
}

/// A required, non-empty string field.
pub(crate) fn required<'a>(path: &Path, field: &str, v: &'a Option<String>) -> Result<&'a str, ConfigError> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ConfigError::field(path, field, "missing")),
    }
}

/// An optional field; empty strings count as absent.
pub(crate) fn optional(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}
