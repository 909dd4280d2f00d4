//! A peer that drops its connection must not end a host that does not ignore SIGPIPE (a C or
//! Swift program: the C tests died with exit code 141 that way). Rust test binaries ignore
//! SIGPIPE, so each case runs in a child process of this binary that restores its default action
//! first, as a C host has it, and the parent checks how the child ended. The writes are vectored
//! (`writev`), as tokio-rustls and hyper write, since plain `send` passes MSG_NOSIGNAL.

#![cfg(unix)]

use conode_core::cluster::{allocate_port_pair, LocalCluster};
use conode_core::config::{NodeAddress, NodeConfig};
use conode_core::sigpipe::Shield;
use conode_core::NodeBuilder;
use std::io::{IoSlice, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::Duration;

const CHILD: &str = "CONODE_SIGPIPE_CHILD";

/// Runs the test `name` again in a child process with SIGPIPE's default action, where it runs
/// `body` and exits 0; returns how the child ended. In the child itself this never returns.
fn as_a_c_host(name: &str, body: fn()) -> ExitStatus {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        // SAFETY: setting a signal's action to its default; no handler involved.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        body();
        std::process::exit(0);
    }
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe).args([name, "--exact", "--nocapture"]).env(CHILD, name).status().expect("run the child")
}

fn assert_survived(status: ExitStatus) {
    assert_eq!(
        status.signal(),
        None,
        "the host process was killed by signal {:?} (SIGPIPE is {})",
        status.signal(),
        libc::SIGPIPE
    );
    assert!(status.success(), "the child failed: {status}");
}

/// A connection whose far end has been closed: the next writes get a reset, then EPIPE.
fn connection_to_a_gone_peer() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    drop(listener.accept().unwrap().0);
    stream.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// Writes with `writev` until the connection reports it is broken; returns that error.
fn write_until_broken(stream: &mut TcpStream) -> std::io::Error {
    let chunk = [7u8; 512];
    for _ in 0..10_000 {
        if let Err(e) = stream.write_vectored(&[IoSlice::new(&chunk), IoSlice::new(&chunk)]) {
            return e;
        }
    }
    panic!("10,000 writes to a closed peer all succeeded");
}

async fn write_until_broken_async(stream: &mut tokio::net::TcpStream) -> std::io::Error {
    use tokio::io::AsyncWriteExt;
    let chunk = [7u8; 512];
    for _ in 0..10_000 {
        if let Err(e) = stream.write_vectored(&[IoSlice::new(&chunk), IoSlice::new(&chunk)]).await {
            return e;
        }
    }
    panic!("10,000 writes to a closed peer all succeeded");
}

fn assert_broken_pipe(e: &std::io::Error) {
    assert!(
        matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset),
        "expected a broken connection, got {e}"
    );
}

fn sigpipe_pending() -> bool {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set before sigismember reads it.
    unsafe { libc::sigpending(set.as_mut_ptr()) == 0 && libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1 }
}

fn blocked(signal: libc::c_int) -> bool {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: reads the current mask into the set before sigismember reads it.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), set.as_mut_ptr()) == 0
            && libc::sigismember(set.as_ptr(), signal) == 1
    }
}

fn sigpipe_blocked() -> bool {
    blocked(libc::SIGPIPE)
}

fn block_here(signal: libc::c_int) {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set before it is read.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), signal);
        libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut());
    }
}

#[test]
fn without_protection_such_a_write_ends_a_c_host() {
    // The control: the setup really raises SIGPIPE, so the tests below can fail.
    let status = as_a_c_host("without_protection_such_a_write_ends_a_c_host", || {
        let mut stream = connection_to_a_gone_peer();
        let e = write_until_broken(&mut stream);
        eprintln!("survived a write to a gone peer: {e}");
    });
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "the child should die of SIGPIPE, ended {status}");
}

#[test]
fn a_call_under_a_shield_gets_epipe_and_leaves_the_callers_thread_as_it_was() {
    let status = as_a_c_host("a_call_under_a_shield_gets_epipe_and_leaves_the_callers_thread_as_it_was", || {
        let mut stream = connection_to_a_gone_peer();
        {
            let _shield = Shield::new();
            assert!(sigpipe_blocked(), "SIGPIPE is blocked while the shield lives");
            assert_broken_pipe(&write_until_broken(&mut stream));
            assert!(sigpipe_pending(), "the write raised a SIGPIPE, held pending");
        }
        assert!(!sigpipe_blocked(), "the caller's mask is restored");
        assert!(!sigpipe_pending(), "the SIGPIPE raised under the shield is discarded");
        // A nested shield restores the outer one's mask, not an unblocked one.
        let outer = Shield::new();
        drop(Shield::new());
        assert!(sigpipe_blocked(), "an inner shield leaves the outer one's block");
        drop(outer);
        assert!(!sigpipe_blocked());
        // What the thread's mask gained meanwhile (another signal blocked) is kept.
        {
            let _shield = Shield::new();
            block_here(libc::SIGUSR1);
        }
        assert!(blocked(libc::SIGUSR1) && !sigpipe_blocked(), "the shield restored the whole old mask");
        // A host that blocks SIGPIPE itself keeps it blocked, and gets no SIGPIPE of ours.
        block_here(libc::SIGPIPE);
        {
            let _shield = Shield::new();
            let mut stream = connection_to_a_gone_peer();
            assert_broken_pipe(&write_until_broken(&mut stream));
        }
        assert!(sigpipe_blocked(), "the host's block is kept");
        assert!(!sigpipe_pending(), "the SIGPIPE raised under the shield is not left to the host");
    });
    assert_survived(status);
}

#[test]
fn writes_on_a_nodes_own_runtime_get_epipe_and_the_host_lives() {
    let status = as_a_c_host("writes_on_a_nodes_own_runtime_get_epipe_and_the_host_lives", || {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port: 0 }, "sigpipe");
        let (node_l, client_l) = allocate_port_pair().unwrap();
        let node = NodeBuilder::new(config).data_dir(dir.path()).listeners(node_l, client_l).build().unwrap();
        let handle = node.runtime_handle();
        let stream = connection_to_a_gone_peer();
        stream.set_nonblocking(true).unwrap();
        // Spawned, so the writes run on one of the runtime's threads, not this one.
        let task = handle.spawn(async move {
            let mut stream = tokio::net::TcpStream::from_std(stream).unwrap();
            write_until_broken_async(&mut stream).await
        });
        assert_broken_pipe(&handle.block_on(task).unwrap());
    });
    assert_survived(status);
}

#[test]
fn writes_on_a_local_clusters_runtime_get_epipe_and_the_host_lives() {
    let status = as_a_c_host("writes_on_a_local_clusters_runtime_get_epipe_and_the_host_lives", || {
        let cluster = LocalCluster::new(1).unwrap();
        let stream = connection_to_a_gone_peer();
        stream.set_nonblocking(true).unwrap();
        let task = cluster.runtime().spawn(async move {
            let mut stream = tokio::net::TcpStream::from_std(stream).unwrap();
            write_until_broken_async(&mut stream).await
        });
        assert_broken_pipe(&cluster.runtime().block_on(task).unwrap());
    });
    assert_survived(status);
}
