//! The Merkle tree of a batched round: one collective signature over the root serves several
//! statements (one per block of different chains), and each block keeps only the path from its own
//! statement to the root (log₂ of the batch in hashes), not the whole batch.
//!
//! Leaves are the 32-byte statements in batch order, hashed as sha256(0x00 ‖ statement); an inner
//! node is sha256(0x01 ‖ left ‖ right); a level with an odd count carries its last node up
//! unchanged. A path lists the siblings from the leaf up (levels where the node is carried up
//! have none), so the position and the batch size fix which side each sibling is on. What a
//! roster signs is sha256(domain ‖ size u64 ‖ root).

use crate::crypto::sha256;

/// Most statements one batched round signs.
pub const MAX_BATCH: usize = 64;

fn leaf(statement: &[u8; 32]) -> [u8; 32] {
    sha256(&[&[0u8], statement])
}

fn node(left: &[u8], right: &[u8]) -> [u8; 32] {
    sha256(&[&[1u8], left, right])
}

/// The signed statement of a batch of `size` statements whose tree has `root`, under `domain`.
fn signed(domain: &[u8], size: usize, root: &[u8; 32]) -> [u8; 32] {
    sha256(&[domain, &(size as u64).to_be_bytes(), root])
}

fn check_size(size: usize) -> Result<(), String> {
    if (2..=MAX_BATCH).contains(&size) {
        Ok(())
    } else {
        Err(format!("a batch holds 2 to {MAX_BATCH} statements, not {size}"))
    }
}

/// The siblings from a statement's leaf up to the root.
pub type Path = Vec<[u8; 32]>;

/// What a roster signs for the batch `statements` (2 to [`MAX_BATCH`]) under `domain`, and the
/// path of each statement (in order).
pub fn batch_tree(domain: &[u8], statements: &[[u8; 32]]) -> Result<([u8; 32], Vec<Path>), String> {
    check_size(statements.len())?;
    let mut level: Vec<[u8; 32]> = statements.iter().map(leaf).collect();
    // Which node of the current level each statement's leaf has become.
    let mut at: Vec<usize> = (0..statements.len()).collect();
    let mut paths: Vec<Path> = vec![Vec::new(); statements.len()];
    while level.len() > 1 {
        for (path, i) in paths.iter_mut().zip(at.iter_mut()) {
            let sibling = *i ^ 1;
            if let Some(s) = level.get(sibling) {
                path.push(*s);
            }
            *i /= 2;
        }
        level = level.chunks(2).map(|pair| if let [l, r] = pair { node(l, r) } else { pair[0] }).collect();
    }
    Ok((signed(domain, statements.len(), &level[0]), paths))
}

/// What a roster signed for a batch of `size` statements under `domain`, given `statement` at
/// `index` and its `path`; or why the path cannot be one.
pub fn statement_of_path(
    domain: &[u8],
    statement: &[u8; 32],
    index: usize,
    size: usize,
    path: &[Vec<u8>],
) -> Result<[u8; 32], String> {
    check_size(size)?;
    if index >= size {
        return Err(format!("batch position {index} is not below the batch size {size}"));
    }
    let mut siblings = path.iter();
    let mut next = || -> Result<&[u8], String> {
        match siblings.next() {
            Some(s) if s.len() == 32 => Ok(s.as_slice()),
            Some(_) => Err("a batch path hash is not 32 bytes".into()),
            None => Err("the batch path is too short".into()),
        }
    };
    let (mut hash, mut i, mut n) = (leaf(statement), index, size);
    while n > 1 {
        if i % 2 == 1 {
            hash = node(next()?, &hash);
        } else if i + 1 < n {
            hash = node(&hash, next()?);
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    if siblings.next().is_some() {
        return Err("the batch path is too long".into());
    }
    Ok(signed(domain, size, &hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(n: usize) -> Vec<[u8; 32]> {
        (0..n).map(|i| sha256(&[&(i as u64).to_be_bytes()])).collect()
    }

    fn owned(path: &[[u8; 32]]) -> Vec<Vec<u8>> {
        path.iter().map(|h| h.to_vec()).collect()
    }

    #[test]
    fn every_path_of_every_size_leads_to_the_signed_root_and_nothing_else_does() {
        for n in 2..=MAX_BATCH {
            let s = statements(n);
            let (root, paths) = batch_tree(b"d", &s).unwrap();
            let depth = (n as f64).log2().ceil() as usize;
            for (i, path) in paths.iter().enumerate() {
                assert!(path.len() <= depth, "n = {n}: path of {} > {depth}", path.len());
                assert_eq!(statement_of_path(b"d", &s[i], i, n, &owned(path)), Ok(root), "n = {n}, i = {i}");
                // Another position, size, domain or statement gives another root (or no path).
                let other = (i + 1) % n;
                assert_ne!(statement_of_path(b"d", &s[i], other, n, &owned(path)), Ok(root));
                assert_ne!(statement_of_path(b"d", &s[other], i, n, &owned(path)), Ok(root));
                assert_ne!(statement_of_path(b"e", &s[i], i, n, &owned(path)), Ok(root));
                if n < MAX_BATCH {
                    assert_ne!(statement_of_path(b"d", &s[i], i, n + 1, &owned(path)), Ok(root));
                }
            }
        }
    }

    #[test]
    fn malformed_paths_and_sizes_are_refused() {
        let s = statements(5);
        let (_, paths) = batch_tree(b"d", &s).unwrap();
        let mut long = owned(&paths[0]);
        long.push(vec![0; 32]);
        assert_eq!(statement_of_path(b"d", &s[0], 0, 5, &long), Err("the batch path is too long".into()));
        let short = owned(&paths[0][..1]);
        assert_eq!(statement_of_path(b"d", &s[0], 0, 5, &short), Err("the batch path is too short".into()));
        let mut odd = owned(&paths[0]);
        odd[0].push(0);
        assert!(statement_of_path(b"d", &s[0], 0, 5, &odd).unwrap_err().contains("32 bytes"));
        assert!(statement_of_path(b"d", &s[0], 5, 5, &owned(&paths[0])).unwrap_err().contains("position"));
        assert!(statement_of_path(b"d", &s[0], 0, 1, &[]).unwrap_err().contains("2 to 64"));
        assert!(statement_of_path(b"d", &s[0], 0, MAX_BATCH + 1, &owned(&paths[0])).is_err());
        assert!(batch_tree(b"d", &s[..1]).is_err());
        assert!(batch_tree(b"d", &statements(MAX_BATCH + 1)).is_err());
    }
}
