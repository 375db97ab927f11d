//! Network namespaces, held by file descriptor only.
//!
//! Each is made by the run's helper process inside the run's user namespace (lab/helper/), and
//! comes with a netlink socket that was created inside it (a socket stays bound to the namespace
//! it was born in). Nothing is bind-mounted: when the fd and the socket close, or the runner
//! dies, the kernel frees the namespace and every link in it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rtnetlink::sys::{Socket, SocketAddr};

use super::connection::{Connections, Slot};
use crate::error::{LabError, LabResult};
use crate::helper::Helper;
use crate::Mode;

/// One namespace of the run, with the netlink socket that lives inside it.
pub struct Namespace {
    pub name: String,
    fd: OwnedFd,
    pub inode: u64,
    /// Its netlink socket, and the connection over it while one is open (connection.rs).
    netlink: Arc<Slot>,
    connections: Arc<Connections>,
    /// Netlink requests made to any namespace of the run (see [`Namespace::netlink`]), and
    /// the nanoseconds they took.
    requests: Arc<AtomicU64>,
    nanos: Arc<AtomicU64>,
    /// The box of its programs (helper/sandbox.rs), made when the first one starts or it is
    /// first given a file.
    pub boxed: super::NsBox,
    /// The interface index the lab asks for next (link.rs); loopback is 1.
    next_index: std::sync::atomic::AtomicU32,
}

impl Namespace {
    /// One netlink request (or dump) to the namespace, made by `ask` with the namespace's
    /// handle (its connection opened if it was closed, and driven while it runs: connection.rs).
    /// Each is counted, so that the run's account says how many requests the lab cost (and a
    /// test keeps it in check).
    pub async fn netlink<T, F>(&self, ask: impl FnOnce(rtnetlink::Handle) -> F) -> LabResult<T>
    where
        F: std::future::Future<Output = T>,
    {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let since = std::time::Instant::now();
        let answer = self
            .connections
            .request(&self.netlink, &self.name, ask)
            .await;
        self.nanos
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        answer
    }

    /// A handle to keep (a link watcher's): the connection stays open while the namespace
    /// lives.
    pub fn kept_netlink(&self) -> LabResult<rtnetlink::Handle> {
        self.connections.kept_handle(&self.netlink, &self.name)
    }

    /// An interface index to ask the kernel for: likely free, so a create needs no lookup
    /// afterwards; the kernel says EBUSY when it is not (a program made a link meanwhile).
    pub fn take_index(&self) -> u32 {
        self.next_index.fetch_add(1, Ordering::Relaxed)
    }

    /// A link now has `index` here (it moved in, or the kernel chose it): ask past it.
    pub fn saw_index(&self, index: u32) {
        self.next_index.fetch_max(index + 1, Ordering::Relaxed);
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Makes the run's namespaces; starts the helper (and so the run's user namespace) on first use,
/// so a run that creates nothing starts nothing.
pub struct NsFactory {
    /// The runner program, which serves as the helper (lab/helper/).
    exe: std::path::PathBuf,
    helper: Option<Helper>,
    /// Netlink requests made so far, all namespaces together, and the nanoseconds they took.
    requests: Arc<AtomicU64>,
    nanos: Arc<AtomicU64>,
    /// The namespaces' netlink connections, open while in use.
    connections: Arc<Connections>,
    /// The bound on the processes of the run's user namespace (helper/mod.rs).
    processes: u64,
    /// Who builds the lab: it decides the run's ids.
    mode: Mode,
}

impl NsFactory {
    pub fn new(exe: std::path::PathBuf, processes: u64, mode: Mode) -> NsFactory {
        NsFactory {
            exe,
            helper: None,
            requests: Arc::default(),
            nanos: Arc::default(),
            connections: Arc::default(),
            processes,
            mode,
        }
    }

    /// The runner program, which also serves as the helper and the cgroup janitor.
    pub fn exe(&self) -> &std::path::Path {
        &self.exe
    }

    /// Netlink requests the lab has made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The time they took.
    pub fn netlink_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// The run's user namespace, once there is one.
    pub fn userns_fd(&self) -> Option<RawFd> {
        self.helper.as_ref().map(Helper::userns_fd)
    }

    /// The run's helper, which exists once a namespace does.
    pub fn helper(&self) -> LabResult<&Helper> {
        self.helper
            .as_ref()
            .ok_or_else(|| LabError::os("the run has no lab helper yet".to_string()))
    }

    /// Start the helper, and so the run's user namespace, if it is not started yet: true if it
    /// was started now.
    pub fn start_helper(&mut self) -> LabResult<bool> {
        if self.helper.is_some() {
            return Ok(false);
        }
        self.helper = Some(Helper::start(&self.exe, self.processes, &self.mode)?);
        Ok(true)
    }

    /// Create a namespace; its loopback is down, as after `ip netns add`.
    pub async fn create(&mut self, name: &str) -> LabResult<Namespace> {
        let helper = self.helper()?;
        let (fd, netlink_fd) = helper.new_netns(name).await?;
        let what = format!("create namespace {name}");
        let inode = nix::sys::stat::fstat(&fd)
            .map_err(|e| LabError::from_errno(e, &what))?
            .st_ino;
        // SAFETY: the fd is a netlink socket we own; `Socket` takes it over until it is
        // bound, then gives it back.
        let mut socket = unsafe { Socket::from_raw_fd(netlink_fd.into_raw_fd()) };
        socket
            .bind_auto()
            .and_then(|_| socket.connect(&SocketAddr::new(0, 0)))
            .map_err(|e| LabError::from_io(&e, format!("{what}: connect its netlink socket")))?;
        // SAFETY: into_raw_fd gives up the socket's ownership of the fd, which OwnedFd takes.
        let socket = unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) };
        // The connections of namespaces the scenario has moved on from close now.
        self.connections.trim();
        Ok(Namespace {
            name: name.to_string(),
            fd,
            inode,
            netlink: self.connections.slot(socket),
            connections: self.connections.clone(),
            requests: self.requests.clone(),
            nanos: self.nanos.clone(),
            boxed: Default::default(),
            next_index: std::sync::atomic::AtomicU32::new(2),
        })
    }
}
