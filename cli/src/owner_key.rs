//! The skipchain owner key file (`--key owner.toml`): an Ed25519 key pair whose public key a chain
//! lists as an owner, and whose signature authorizes appends. Kept like private.toml: mode 0600,
//! refused when group or others can read it, created once and never overwritten.

use anyhow::{bail, Context, Result};
use conode_core::config::{write_file_atomic, ConfigError};
use conode_core::crypto::{IdentityKeyPair, IdentityPublicKey};
use serde::Deserialize;
use std::path::Path;
use zeroize::Zeroizing;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOwnerKey {
    #[serde(rename = "Public")]
    public: Option<String>,
    #[serde(rename = "Private")]
    private: Option<String>,
}

/// Refuses a key file that group or others can read.
fn check_permissions(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?.permissions().mode()
                & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{}: is readable by group or others (mode {mode:03o}); it holds a secret key, run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Loads an owner key file, checking its permissions and that `Public` matches `Private`.
pub fn load(path: &Path) -> Result<IdentityKeyPair> {
    load_named(path, "owner key")
}

/// Loads a key file of this format that holds a `what` (e.g. "member key": a governance member's).
pub fn load_named(path: &Path, what: &str) -> Result<IdentityKeyPair> {
    check_permissions(path)?;
    let text =
        Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?);
    let raw: RawOwnerKey = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a valid {what} file: {}", path.display(), e.message()))?;
    let field = |name: &str, reason: String| anyhow::anyhow!("{}: field `{name}`: {reason}", path.display());
    let private = raw
        .private
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| field("Private", "missing".into()))?;
    let pair = IdentityKeyPair::from_secret_hex(private).map_err(|e| field("Private", e.to_string()))?;
    if let Some(public) = raw.public.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let public = IdentityPublicKey::from_hex(public).map_err(|e| field("Public", e.to_string()))?;
        if public != pair.public() {
            return Err(field("Public", "does not belong to `Private`".into()));
        }
    }
    Ok(pair)
}

/// Writes a new key file (mode 0600); refuses to replace an existing file.
pub fn create(path: &Path) -> Result<IdentityKeyPair> {
    create_with(path, "conode skipchain owner key: whoever holds it may append to the chains that list `Public`.")
}

/// Writes a new key file (mode 0600) headed by the comment `what`; refuses to replace a file.
pub fn create_with(path: &Path, what: &str) -> Result<IdentityKeyPair> {
    let pair = IdentityKeyPair::generate();
    let text = Zeroizing::new(format!(
        "# {what}\nPublic = \"{}\"\nPrivate = \"{}\"\n",
        pair.public().to_hex(),
        pair.secret_hex().as_str()
    ));
    write_file_atomic(path, text.as_bytes(), 0o600, false).map_err(|e| match e {
        ConfigError::Exists { file } => anyhow::anyhow!("{}: already exists; refusing to overwrite it", file.display()),
        e => e.into(),
    })?;
    Ok(pair)
}

/// Loads the key file, or creates it when it does not exist; `true` when it was created.
pub fn load_or_create(path: &Path) -> Result<(IdentityKeyPair, bool)> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok((load(path)?, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((create(path)?, true)),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_reloadable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("owner.toml");
        let (k, created) = load_or_create(&p).unwrap();
        assert!(created);
        let before = std::fs::read(&p).unwrap();
        let (again, created) = load_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(again.public(), k.public());
        assert_eq!(std::fs::read(&p).unwrap(), before);
        let e = create(&p).unwrap_err().to_string();
        assert!(e.contains("refusing to overwrite"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
            let e = load(&p).unwrap_err().to_string();
            assert!(e.contains("owner.toml") && e.contains("chmod 600"), "{e}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.toml");
        let write = |text: &str| {
            conode_core::config::write_file_atomic(&p, text.as_bytes(), 0o600, true).unwrap();
        };
        write("Private = \"zz\"\n");
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("k.toml") && e.contains("`Private`"), "{e}");
        let other = IdentityKeyPair::generate();
        let mine = IdentityKeyPair::generate();
        write(&format!("Public = \"{}\"\nPrivate = \"{}\"\n", other.public().to_hex(), mine.secret_hex().as_str()));
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("`Public`") && e.contains("does not belong"), "{e}");
        write("Public = [1, 2\n");
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("k.toml") && e.contains("not a valid owner key file"), "{e}");
    }
}
