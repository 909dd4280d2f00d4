//! Per-member connection policy: a member whose overrides.toml entry says `Via = "socks5://…"` is
//! dialled through that proxy (a small SOCKS5 proxy written here counts its connections and the
//! targets asked for); with `Anonymous = true` a member without a `Via` is never dialled directly,
//! one with `Via = "direct"` is.

use conode_core::cluster::LocalCluster;
use conode_core::config::{AddressOverrides, Route};
use conode_core::crypto::IdentityKeyPair;
use conode_core::network::{NetSettings, Network};
use conode_core::services::Tasks;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A SOCKS5 proxy (no auth, CONNECT by IPv4 or name) recording each CONNECT target.
async fn proxy(listener: TcpListener, seen: Arc<Mutex<Vec<String>>>) {
    loop {
        let Ok((mut c, _)) = listener.accept().await else { return };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut hello = [0u8; 3];
            c.read_exact(&mut hello).await.ok()?;
            c.write_all(&[5, 0]).await.ok()?;
            let mut head = [0u8; 4];
            c.read_exact(&mut head).await.ok()?;
            let host = match head[3] {
                1 => {
                    let mut ip = [0u8; 4];
                    c.read_exact(&mut ip).await.ok()?;
                    std::net::Ipv4Addr::from(ip).to_string()
                }
                3 => {
                    let mut n = [0u8; 1];
                    c.read_exact(&mut n).await.ok()?;
                    let mut name = vec![0u8; n[0] as usize];
                    c.read_exact(&mut name).await.ok()?;
                    String::from_utf8(name).ok()?
                }
                _ => return None,
            };
            let mut port = [0u8; 2];
            c.read_exact(&mut port).await.ok()?;
            let target = format!("{host}:{}", u16::from_be_bytes(port));
            seen.lock().unwrap().push(target.clone());
            let mut up = TcpStream::connect(&target).await.ok()?;
            c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.ok()?;
            tokio::io::copy_bidirectional(&mut c, &mut up).await.ok()?;
            Some(())
        });
    }
}

#[test]
fn socks5_route_and_anonymous_policy() {
    let c = LocalCluster::new(3).unwrap();
    let rt = c.runtime();
    let members = c.roster().servers.clone();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy_addr = listener.local_addr().unwrap().to_string();
    rt.spawn(proxy(listener, seen.clone()));

    let mut overrides = AddressOverrides::default();
    overrides.set_route(members[0].public, Route::Socks5(proxy_addr));
    overrides.set_route(members[2].public, Route::Direct);
    overrides.set_anonymous(true);
    let tasks = Tasks::new();
    let settings = NetSettings { dial_timeout: Duration::from_secs(5), ..NetSettings::default() };
    let net = {
        let _guard = rt.enter();
        Network::new(IdentityKeyPair::generate(), settings, overrides, tasks.clone()).unwrap()
    };
    let t = Duration::from_secs(5);

    // Member 0 through the proxy: the proxy saw exactly that member's address.
    rt.block_on(net.ping(&members[0], t)).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![members[0].address.host_port()]);
    // Member 1 has no Via and the node is anonymous: no dial at all, a clear error.
    let err = rt.block_on(net.ping(&members[1], t)).unwrap_err().to_string();
    assert!(err.contains("Anonymous"), "{err}");
    // Member 2 says direct: reached without the proxy.
    rt.block_on(net.ping(&members[2], t)).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    tasks.token().cancel();
}
