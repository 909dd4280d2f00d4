//! `SkipBlock`: a skipchain block as Python sees it (read-only fields, protobuf bytes for storage
//! and transport), returned by LocalCluster and Client calls and checked by
//! `conode.verify_skipchain`.

use crate::config::PyRoster;
use conode_core::services::skipchain::config_roster;
use conode_core::verify::skipchain::SkipBlock;
use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::borrow::Cow;

/// One block of a skipchain. `hash` covers every field except the forward links, which are added
/// (collectively signed) as later blocks arrive. `to_bytes()` / `SkipBlock.from_bytes()` give the
/// wire encoding (protobuf, as `/Skipchain/*` sends it).
#[pyclass(module = "conode", name = "SkipBlock", frozen)]
pub struct PySkipBlock {
    pub inner: SkipBlock,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[pymethods]
impl PySkipBlock {
    /// Decodes a block (bounded in size). Raises ValueError for bytes that are not a block.
    #[staticmethod]
    fn from_bytes(data: Cow<'_, [u8]>) -> PyResult<Self> {
        SkipBlock::decode_bounded(&data).map(|inner| Self { inner }).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The protobuf encoding.
    fn to_bytes(&self) -> Cow<'static, [u8]> {
        Cow::Owned(self.inner.encode_to_vec())
    }

    /// Position in the chain (the genesis is 0).
    #[getter]
    fn index(&self) -> u64 {
        self.inner.index
    }

    #[getter]
    fn height(&self) -> u32 {
        self.inner.height
    }

    #[getter]
    fn base_height(&self) -> u32 {
        self.inner.base_height
    }

    #[getter]
    fn maximum_height(&self) -> u32 {
        self.inner.maximum_height
    }

    /// The block id (sha256 over its content).
    #[getter]
    fn hash(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.inner.hash)
    }

    /// The id of the chain: the genesis block's hash (for the genesis, its own hash).
    #[getter]
    fn genesis_id(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.inner.chain_id())
    }

    /// The application data.
    #[getter]
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.inner.data)
    }

    /// Hex Ed25519 keys allowed to append.
    #[getter]
    fn owners(&self) -> Vec<String> {
        self.inner.owners.iter().map(|o| hex(o)).collect()
    }

    /// Hashes of the blocks this one links back to, level 0 first.
    #[getter]
    fn back_links(&self) -> Vec<Cow<'_, [u8]>> {
        self.inner.back_link_ids.iter().map(|b| Cow::Borrowed(b.as_slice())).collect()
    }

    /// Hashes of the later blocks this one links forward to (signed by its roster), level 0 first.
    #[getter]
    fn forward_links(&self) -> Vec<Cow<'_, [u8]>> {
        self.inner.forward_links.iter().map(|l| Cow::Borrowed(l.to.as_slice())).collect()
    }

    /// The roster that signs this block's forward links (keys and proofs of possession checked).
    #[getter]
    fn roster(&self) -> PyResult<PyRoster> {
        let r = self.inner.roster.as_ref().ok_or_else(|| PyValueError::new_err("the block has no roster"))?;
        config_roster(r).map(|inner| PyRoster { inner }).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PySkipBlock>().is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __hash__(&self) -> u64 {
        let mut h = [0u8; 8];
        let n = self.inner.hash.len().min(8);
        h[..n].copy_from_slice(&self.inner.hash[..n]);
        u64::from_le_bytes(h)
    }

    fn __repr__(&self) -> String {
        format!(
            "SkipBlock(index={}, height={}, hash={:?}, data={} bytes, forward_links={})",
            self.inner.index,
            self.inner.height,
            hex(&self.inner.hash),
            self.inner.data.len(),
            self.inner.forward_links.len()
        )
    }
}

/// Blocks given from Python (a proof): a sequence of `SkipBlock`.
pub fn blocks_of(proof: &[Bound<'_, PySkipBlock>]) -> Vec<SkipBlock> {
    proof.iter().map(|b| b.get().inner.clone()).collect()
}
