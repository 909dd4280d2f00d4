//! `conode setup`: the dialogue of the conode README (port, reachable address, description, folder,
//! confirmation before overwriting), or `--non-interactive` with flags. Writes private.toml (0600)
//! and public.toml; never replaces an existing config without consent.

use anyhow::{bail, Context, Result};
use conode_core::config::{paths, NodeAddress, NodeConfig, Roster};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct SetupArgs {
    /// Take every answer from the flags below instead of asking.
    #[arg(long)]
    non_interactive: bool,
    /// Address this conode is reachable under (DNS name or IP).
    #[arg(long)]
    host: Option<String>,
    /// Node port P (the client port is P+1).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind instead of host:port (e.g. 0.0.0.0:7770 in a container); written as
    /// `ListenAddress`.
    #[arg(long)]
    listen: Option<String>,
    /// Description shown in rosters.
    #[arg(long)]
    description: Option<String>,
    /// Folder for private.toml, public.toml and the database.
    #[arg(long)]
    folder: Option<PathBuf>,
    /// Public URL of the client port when it is not ws://host:port+1 (e.g. https://node.example.org
    /// behind a TLS reverse proxy); written as `URL` so rosters and `conode check` use it.
    #[arg(long)]
    url: Option<String>,
    /// Replace an existing configuration (non-interactive only).
    #[arg(long)]
    overwrite: bool,
}

/// What setup needs to know.
pub struct Answers {
    pub listen: Option<String>,
    pub host: String,
    pub port: u16,
    pub description: String,
    pub folder: PathBuf,
    /// Whether `/Cosi/Sign` serves any client (`AllowOpenSigning`); off unless asked for.
    pub allow_open_signing: bool,
    /// Published client-port URL (`URL`), when not the default one.
    pub url: Option<String>,
}

/// Writes private.toml and public.toml into `a.folder`. Refuses to overwrite unless allowed.
pub fn write_config(a: &Answers, overwrite: bool) -> Result<(PathBuf, NodeConfig)> {
    let address = NodeAddress::parse(&format!("tls://{}:{}", a.host, a.port)).map_err(anyhow::Error::msg)?;
    let mut config = NodeConfig::generate(address, a.description.clone());
    config.listen_address = a.listen.clone();
    config.data_dir = Some(absolute(&a.folder));
    config.allow_open_signing = a.allow_open_signing;
    if let Some(u) = &a.url {
        conode_core::client_api::ClientUrl::parse(u).with_context(|| format!("--url `{u}`"))?;
        config.url = Some(u.trim().trim_end_matches('/').to_string());
    }
    let private = a.folder.join("private.toml");
    config.save(&private, overwrite)?;
    Roster::new(vec![config.server_identity()]).save(&a.folder.join("public.toml"), true)?;
    Ok((private, config))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub fn run(args: SetupArgs) -> Result<()> {
    if args.non_interactive {
        let port = args.port.unwrap_or(7770);
        if port == 0 || port == u16::MAX {
            bail!("--port: {port} is not usable (the client port is port+1)");
        }
        let answers = Answers {
            listen: args.listen,
            host: args.host.unwrap_or_else(|| "127.0.0.1".into()),
            port,
            description: args.description.unwrap_or_default(),
            folder: args.folder.unwrap_or_else(paths::default_config_dir),
            allow_open_signing: false,
            url: args.url,
        };
        let (path, config) = write_config(&answers, args.overwrite)?;
        print_done(&path, &config);
        return Ok(());
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    interactive(&mut input, &mut std::io::stdout())
}

fn ask(input: &mut dyn BufRead, out: &mut dyn Write, question: &str, default: &str) -> Result<String> {
    if default.is_empty() {
        write!(out, "{question}: ")?;
    } else {
        write!(out, "{question} [{default}]: ")?;
    }
    out.flush()?;
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        bail!("setup aborted: no more input");
    }
    let line = line.trim();
    Ok(if line.is_empty() { default.to_string() } else { line.to_string() })
}

/// The interactive dialogue (stdin/stdout are parameters so tests can drive it).
pub fn interactive(input: &mut dyn BufRead, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "Setting up a cothority-server.")?;
    let listen = ask(input, out, "Please enter the [address:]PORT for incoming requests", "7770")?;
    let (listen_host, port) = match listen.rsplit_once(':') {
        Some((h, p)) => (Some(h.to_string()), p),
        None => (None, listen.as_str()),
    };
    let port: u16 = port.trim().parse().with_context(|| format!("`{port}` is not a port number"))?;
    if port == 0 || port == u16::MAX {
        bail!("port {port} is not usable (the client port is port+1)");
    }
    let default_host =
        listen_host.clone().filter(|h| !h.is_empty() && h != "0.0.0.0").unwrap_or_else(|| "127.0.0.1".into());
    let host = ask(input, out, "Please enter the name or IP address this conode is reachable under", &default_host)?;
    let description = ask(input, out, "Please enter a description for this conode", "")?;
    let default_folder = paths::default_config_dir().display().to_string();
    let folder = PathBuf::from(ask(
        input,
        out,
        "In which folder do you want to save the configuration files?",
        &default_folder,
    )?);
    let private = folder.join("private.toml");
    let mut overwrite = false;
    if private.exists() {
        let yes = ask(
            input,
            out,
            &format!("Configuration file {} already exists. Overwrite it? [y/N]", private.display()),
            "n",
        )?;
        if !yes.eq_ignore_ascii_case("y") && !yes.eq_ignore_ascii_case("yes") {
            writeln!(out, "Nothing changed.")?;
            bail!("{}: exists and was kept; setup aborted", private.display());
        }
        overwrite = true;
    }
    let answers = Answers {
        listen: listen_host.filter(|h| !h.is_empty()).map(|h| format!("{h}:{port}")),
        host,
        port,
        description,
        folder,
        allow_open_signing: false,
        url: None,
    };
    let (path, config) = write_config(&answers, overwrite)?;
    print_done_to(out, &path, &config)?;
    Ok(())
}

fn print_done(path: &Path, config: &NodeConfig) {
    if crate::output::json() {
        let public = path.with_file_name("public.toml");
        outln!(
            "{}",
            serde_json::json!({
                "private": path.display().to_string(),
                "public": public.display().to_string(),
                "node_id": config.node_id(),
                "address": config.address.to_string(),
                "roster_entry": Roster::new(vec![config.server_identity()]).to_toml(),
            })
        );
        return;
    }
    let _ = print_done_to(&mut std::io::stdout(), path, config);
}

fn print_done_to(out: &mut dyn Write, path: &Path, config: &NodeConfig) -> Result<()> {
    writeln!(out, "Wrote {} (mode 0600) and public.toml beside it.", path.display())?;
    writeln!(out, "Node id: {}", config.node_id())?;
    writeln!(out, "Start it with: conode -c {} server", path.display())?;
    writeln!(out, "Add this to your roster:\n\n{}", Roster::new(vec![config.server_identity()]).to_toml())?;
    Ok(())
}
