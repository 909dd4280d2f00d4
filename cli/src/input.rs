//! Turns what the user typed or pointed at into bytes, with errors that name the flag, file or
//! field at fault: hex arguments, and the `--message TEXT | --file F` / `--data TEXT | --file F`
//! pairs of the signing and skipchain commands.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Largest file read as a message, block data or proof (the nodes refuse far smaller ones anyway).
pub const MAX_INPUT_FILE: u64 = 64 * 1024 * 1024;

/// Decodes hex (an optional `0x` prefix is accepted); `what` names the flag or field.
pub fn hex_bytes(what: &str, s: &str) -> Result<Vec<u8>> {
    let t = s.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    hex::decode(t).map_err(|e| anyhow::anyhow!("{what}: `{}` is not valid hex: {e}", shorten(s)))
}

/// Decodes a 32-byte hash given in hex.
pub fn hash32(what: &str, s: &str) -> Result<Vec<u8>> {
    let b = hex_bytes(what, s)?;
    if b.len() != 32 {
        bail!("{what}: expected a 32-byte hash (64 hex digits), got {} bytes", b.len());
    }
    Ok(b)
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

/// Reads a whole file (bounded), naming it on failure.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if meta.len() > MAX_INPUT_FILE {
        bail!("{}: {} bytes is more than the {} bytes accepted", path.display(), meta.len(), MAX_INPUT_FILE);
    }
    std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// Bytes given inline (`text`) or from a file; `None` when neither was given.
pub fn text_or_file(text: &Option<String>, file: &Option<PathBuf>) -> Result<Option<Vec<u8>>> {
    match (text, file) {
        (Some(t), None) => Ok(Some(t.as_bytes().to_vec())),
        (None, Some(f)) => Ok(Some(read_file(f)?)),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => bail!("give the content inline or as a file, not both"),
    }
}

/// Writes an output file atomically once the command has succeeded.
pub fn write_output(path: &Path, contents: &[u8]) -> Result<()> {
    conode_core::config::write_file_atomic(path, contents, 0o644, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_errors_name_the_flag() {
        assert_eq!(hex_bytes("--genesis", "0x0aff").unwrap(), vec![0x0a, 0xff]);
        let e = hex_bytes("--genesis", "zz").unwrap_err().to_string();
        assert!(e.contains("--genesis") && e.contains("zz"), "{e}");
        let e = hash32("--from", "abcd").unwrap_err().to_string();
        assert!(e.contains("--from") && e.contains("32-byte"), "{e}");
        assert_eq!(hash32("--from", &"ab".repeat(32)).unwrap().len(), 32);
    }

    #[test]
    fn text_or_file_reads_either() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.bin");
        std::fs::write(&f, [1u8, 2, 3]).unwrap();
        assert_eq!(text_or_file(&Some("hi".into()), &None).unwrap(), Some(b"hi".to_vec()));
        assert_eq!(text_or_file(&None, &Some(f)).unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(text_or_file(&None, &None).unwrap(), None);
        let missing = dir.path().join("nope.bin");
        let e = text_or_file(&None, &Some(missing)).unwrap_err().to_string();
        assert!(e.contains("nope.bin"), "{e}");
    }
}
