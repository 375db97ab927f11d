//! Network namespaces, held by file descriptor only.
//!
//! A namespace is created by `unshare(CLONE_NEWNET)` on one dedicated thread (never a tokio
//! worker, whose namespace every task would otherwise share), which opens
//! `/proc/thread-self/ns/net` to hold it, creates the namespace's own netlink socket while still
//! inside it (a socket stays bound to the namespace it was born in), then returns to the
//! runner's namespace. Nothing is bind-mounted: when the fd and the socket close, or the runner
//! dies, the kernel frees the namespace and every link in it.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::mpsc;

use nix::sched::{setns, unshare, CloneFlags};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{LabError, LabResult};

/// One namespace of the run, with the netlink connection that lives inside it.
pub struct Namespace {
    pub name: String,
    fd: OwnedFd,
    pub inode: u64,
    pub netlink: rtnetlink::Handle,
    connection: JoinHandle<()>,
}

impl Namespace {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // The connection task owns the netlink socket, and a socket keeps its namespace alive:
        // stop it so that closing `fd` really frees the namespace.
        self.connection.abort();
    }
}

type Reply = oneshot::Sender<LabResult<Namespace>>;

/// The dedicated thread that creates namespaces for one run.
pub struct NsFactory {
    requests: Option<mpsc::Sender<(String, Reply)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsFactory {
    pub fn start() -> LabResult<NsFactory> {
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) = mpsc::channel::<(String, Reply)>();
        let thread = std::thread::Builder::new()
            .name("nslab-netns".into())
            .spawn(move || {
                let home = match File::open("/proc/thread-self/ns/net") {
                    Ok(f) => f,
                    Err(e) => {
                        for (_, reply) in rx {
                            let _ = reply.send(Err(LabError::from_io(
                                &e,
                                "open the runner's own network namespace",
                            )));
                        }
                        return;
                    }
                };
                // Each netlink socket must be registered with the runtime's reactor.
                let _guard = runtime.enter();
                for (name, reply) in rx {
                    let made = create_here(&name, &home);
                    // If we could not get back home, every later namespace would be made from
                    // the wrong place: refuse them all rather than guess.
                    let stuck = matches!(&made, Err(LabError::Trap(_)));
                    let _ = reply.send(made);
                    if stuck {
                        return;
                    }
                }
            })
            .map_err(|e| LabError::from_io(&e, "start the namespace thread"))?;
        Ok(NsFactory {
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    /// Create a namespace; its loopback is down, as after `ip netns add`.
    pub async fn create(&self, name: &str) -> LabResult<Namespace> {
        let (reply, answer) = oneshot::channel();
        let gone = || LabError::Trap(wasmtime::format_err!("the namespace thread has stopped"));
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send((name.to_string(), reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl Drop for NsFactory {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs on the factory thread: enter a new namespace, take what we need from inside it, return.
fn create_here(name: &str, home: &File) -> LabResult<Namespace> {
    let what = format!("create namespace {name}");
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| LabError::from_errno(e, &what))?;
    let inside = (|| -> LabResult<_> {
        let fd: OwnedFd = File::open("/proc/thread-self/ns/net")
            .map_err(|e| LabError::from_io(&e, format!("{what}: open its handle")))?
            .into();
        let (connection, netlink, _) = rtnetlink::new_connection()
            .map_err(|e| LabError::from_io(&e, format!("{what}: open its netlink socket")))?;
        Ok((fd, connection, netlink))
    })();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
        LabError::Trap(wasmtime::format_err!(
            "could not return to the runner's namespace: {e}"
        ))
    })?;
    let (fd, connection, netlink) = inside?;
    let inode = File::from(fd.try_clone().map_err(|e| LabError::from_io(&e, &what))?)
        .metadata()
        .map_err(|e| LabError::from_io(&e, &what))?
        .ino();
    Ok(Namespace {
        name: name.to_string(),
        fd,
        inode,
        netlink,
        connection: tokio::spawn(connection),
    })
}
