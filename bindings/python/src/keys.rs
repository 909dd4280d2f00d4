//! `IdentityKey`: an Ed25519 key pair held in Python, used as a skipchain owner key (the genesis
//! lists owners' public keys; an append is signed by one of them).

use conode_core::crypto::{IdentityKeyPair, IdentityPublicKey};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::borrow::Cow;

/// An Ed25519 key pair (the kind of key that identifies nodes and owns skipchains). `repr()` never
/// shows the secret.
#[pyclass(module = "conode", name = "IdentityKey", frozen)]
pub struct PyIdentityKey {
    pub inner: IdentityKeyPair,
}

#[pymethods]
impl PyIdentityKey {
    /// A fresh random key.
    #[staticmethod]
    fn generate() -> Self {
        Self { inner: IdentityKeyPair::generate() }
    }

    /// The key of a 32-byte secret seed given as 64 hex digits (what `secret_hex()` returns).
    #[staticmethod]
    fn from_secret_hex(secret: &str) -> PyResult<Self> {
        IdentityKeyPair::from_secret_hex(secret.trim())
            .map(|inner| Self { inner })
            .map_err(|e| PyValueError::new_err(format!("secret key: {e}")))
    }

    /// The 32-byte secret seed as hex. Keep it secret.
    fn secret_hex(&self) -> String {
        self.inner.secret_hex().to_string()
    }

    /// Hex Ed25519 public key.
    #[getter]
    fn public_key(&self) -> String {
        self.inner.public().to_hex()
    }

    /// The 32 public key bytes.
    #[getter]
    fn public_bytes(&self) -> Cow<'static, [u8]> {
        Cow::Owned(self.inner.public().as_bytes().to_vec())
    }

    /// The 64-byte Ed25519 signature of `message`.
    fn sign(&self, message: Cow<'_, [u8]>) -> Cow<'static, [u8]> {
        Cow::Owned(self.inner.sign(&message).to_vec())
    }

    fn __repr__(&self) -> String {
        format!("IdentityKey(public_key={:?})", self.inner.public().to_hex())
    }
}

/// An owner given from Python: an `IdentityKey` or a hex public key.
#[derive(FromPyObject)]
pub enum OwnerArg<'py> {
    Key(Bound<'py, PyIdentityKey>),
    Hex(String),
}

impl OwnerArg<'_> {
    pub fn public(&self) -> PyResult<IdentityPublicKey> {
        match self {
            OwnerArg::Key(k) => Ok(k.get().inner.public()),
            OwnerArg::Hex(h) => IdentityPublicKey::from_hex(h.trim())
                .map_err(|e| PyValueError::new_err(format!("owner public key {h:?}: {e}"))),
        }
    }
}
