//! Default locations: Linux `~/.config/conode` and `~/.local/share/conode`, macOS
//! `~/Library/Application Support/conode`, Windows `%AppData%\Conode`.

use std::path::PathBuf;

fn app_dir_name() -> &'static str {
    if cfg!(windows) {
        "Conode"
    } else {
        "conode"
    }
}

/// Folder holding private.toml and public.toml by default.
pub fn default_config_dir() -> PathBuf {
    directories::BaseDirs::new()
        .map(|b| b.config_dir().join(app_dir_name()))
        .unwrap_or_else(|| PathBuf::from(".conode"))
}

/// Folder holding the node database by default.
pub fn default_data_dir() -> PathBuf {
    directories::BaseDirs::new().map(|b| b.data_dir().join(app_dir_name())).unwrap_or_else(|| PathBuf::from(".conode"))
}

/// Default private.toml path.
pub fn default_private_toml() -> PathBuf {
    default_config_dir().join("private.toml")
}
