//! What every client of a conode's client port shares, without the runtime (light clients use it
//! too): the URL type and the stable error codes. The async client lives in [`crate::api::client`].

pub mod error_code;
pub mod url;

pub use error_code::{ErrorCode, WireError, MAX_CLOSE_REASON, WS_ERROR_CODE};
pub use url::{ClientUrl, UrlError};
