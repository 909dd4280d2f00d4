//! `uniffi-bindgen`, built from the same pinned uniffi as conode-ffi, so the generated Kotlin and
//! Swift always match the library: `cargo run -p uniffi-bindgen -- generate --library …`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
