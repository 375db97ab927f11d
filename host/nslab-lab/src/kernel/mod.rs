//! The kernel as the lab's logic sees it: namespaces, links, addresses, shaping, routes,
//! forwarding, and the pins that keep a lab. [`Netlink`] is the real one (a namespace held by
//! fd with its own netlink socket, see netns.rs); `fake.rs` a recording fake with the kernel's
//! rules for names, indexes, peers and moves, so that the lab's logic is tested without root.
//! Error texts name what was being done (`what`), as the kernel's errno is mapped in one place
//! (error.rs).

pub mod connection;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod link;
mod netlink;
pub mod netns;
pub mod route;
pub mod shaping;

use std::future::Future;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use crate::error::LabResult;
use crate::helper::port::Port;
use crate::input::Cidr;
pub use link::LinkInfoView;
pub use netlink::Netlink;
#[cfg(any(test, feature = "test-util"))]
pub use route::Hop;
pub use route::{Detailed, Route};
pub use shaping::Shaping;

/// The run's principal, once its user namespace exists: the host ids its programs are, as
/// (first, count) blocks, and the user namespace's inode (`user:[N]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub host_ids: Vec<(u32, u32)>,
    pub userns: u64,
}

/// How a retired link's name begins (`~` is no character of a scenario's names, input.rs).
pub const RETIRED: char = '~';

/// One change to a link, as `ip link set` makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    Up(bool),
    Mtu(u32),
    Mac([u8; 6]),
    /// Make it a port of the bridge with this index (same namespace).
    Master(u32),
}

/// Where a kept lab is held for an ordinary user: a keeper process (persist/keeper.rs), its pid
/// and start time, and for each namespace (in the order given) the path of its fd there, with
/// its files' box when it has one: (path, inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperHold {
    pub pid: u32,
    pub start: u64,
    pub namespaces: Vec<(String, Option<(String, u64)>)>,
}

/// The box of a namespace's programs once made (helper/port.rs), held with the namespace:
/// its mount namespace, its UTS namespace, and the socket of its link events until the watch
/// takes it (programs/watch.rs).
#[derive(Default)]
pub struct NsBox {
    pub boxfs: Option<OwnedFd>,
    pub uts: Option<OwnedFd>,
    pub link_events: Option<OwnedFd>,
}

/// What the lab asks of the kernel. `Ns` is a namespace held open: the kernel frees it, with
/// every link in it, when the value is dropped and nothing else holds it. What its programs
/// and files need goes through the [`Port`] to the run's helper.
pub trait Kernel: Send + Sync {
    type Ns: Send + Sync;
    type Port: Port;

    /// The port to the run's helper, once the run's principal has started.
    fn port(&self) -> LabResult<&Self::Port>;
    /// A descriptor that holds `ns` (what a program's start enters).
    fn ns_fd(ns: &Self::Ns) -> BorrowedFd<'_>;
    /// The box of `ns`'s programs.
    fn ns_box(ns: &Self::Ns) -> &NsBox;
    fn ns_box_mut(ns: &mut Self::Ns) -> &mut NsBox;
    /// The netlink handle of `ns`, for the watch on the links its programs make (kept open
    /// while the namespace lives): None where there is no netlink (the fake).
    fn link_handle(ns: &Self::Ns) -> LabResult<Option<rtnetlink::Handle>>;
    /// The program that is the janitor of the run's cgroups (programs/cgroup/): None where the
    /// lab makes no cgroups (the fake).
    fn cgroup_janitor(&self) -> Option<&Path>;

    /// Start the run's principal (its user namespace and the helper in it) if it is not yet:
    /// Some when it was started now.
    fn start(&mut self) -> LabResult<Option<Principal>>;
    /// A new network namespace, its loopback down: the handle and its inode.
    fn create_namespace(
        &mut self,
        name: &str,
    ) -> impl Future<Output = LabResult<(Self::Ns, u64)>> + Send;
    /// Requests made to the kernel so far (for the account, and a test that keeps it in check).
    fn requests(&self) -> u64;
    /// The time those requests took, from sending to the answer (the account's `spent`).
    fn netlink_time(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// The links of `ns` (all, or only the one with this index and name).
    fn links(
        &self,
        ns: &Self::Ns,
        only: Option<(u32, &str)>,
    ) -> impl Future<Output = LabResult<Vec<LinkInfoView>>> + Send;
    /// The index of the link called `name` in `ns`, if there is one.
    fn link_index(
        &self,
        ns: &Self::Ns,
        name: &str,
    ) -> impl Future<Output = LabResult<Option<u32>>> + Send;
    /// A veth pair, each end made directly in its namespace: the two indexes.
    fn add_veth(
        &self,
        a: &str,
        a_ns: &Self::Ns,
        b: &str,
        b_ns: &Self::Ns,
    ) -> impl Future<Output = LabResult<(u32, u32)>> + Send;
    fn add_bridge(&self, ns: &Self::Ns, name: &str) -> impl Future<Output = LabResult<u32>> + Send;
    fn set_link(
        &self,
        ns: &Self::Ns,
        index: u32,
        change: LinkChange,
        what: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    /// Move link `index` (called `name`) of `from` into `to`: its index there.
    fn move_link(
        &self,
        from: &Self::Ns,
        index: u32,
        name: &str,
        to: &Self::Ns,
        what: &str,
    ) -> impl Future<Output = LabResult<u32>> + Send;
    fn add_address(
        &self,
        ns: &Self::Ns,
        index: u32,
        cidr: Cidr,
        what: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    fn remove_address(
        &self,
        ns: &Self::Ns,
        index: u32,
        cidr: Cidr,
        what: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    fn set_shaping(
        &self,
        ns: &Self::Ns,
        index: u32,
        shaping: &Shaping,
        what: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    fn clear_shaping(
        &self,
        ns: &Self::Ns,
        index: u32,
        what: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    fn set_forwarding(
        &self,
        ns: &Self::Ns,
        on: bool,
        what: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    fn add_route(
        &self,
        ns: &Self::Ns,
        route: &Route,
        what: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    fn remove_route(
        &self,
        ns: &Self::Ns,
        route: &Route,
        what: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;
    /// Every unicast route of every table but local.
    fn routes(&self, ns: &Self::Ns) -> impl Future<Output = LabResult<Vec<Detailed>>> + Send;
    /// Retire link `index` of `ns`, the veth peer of a link in a namespace being deleted: down,
    /// and renamed to `name` ([`RETIRED`]-prefixed, which no scenario name can be), at once and
    /// cheaply. The kernel deletes it with its peer when it frees the deleted namespace, in its
    /// own time; until then it is hidden from the lab's listings, and its old name is free.
    fn retire_link(
        &self,
        ns: &Self::Ns,
        index: u32,
        name: &str,
    ) -> impl Future<Output = LabResult<()>> + Send;

    /// Pin `ns` as /run/netns/`pinned` (root's `--keep`).
    fn pin(&self, ns: &Self::Ns, pinned: &str) -> LabResult<()>;
    /// Pin the files of `ns`'s programs as `pinned` too: the box's inode, or None if its
    /// programs never had a box.
    fn pin_files(&self, ns: &Self::Ns, pinned: &str) -> LabResult<Option<u64>>;
    /// Undo [`Kernel::pin`] and [`Kernel::pin_files`] of a namespace whose inode is `inode`
    /// (and whose box's is `files`), as a failed keep rolls back.
    fn unpin(&self, pinned: &str, inode: u64, files: Option<u64>);
    /// Hand the lab to a keeper process (an ordinary user's `--keep`).
    fn start_keeper(&self, namespaces: &[&Self::Ns]) -> LabResult<KeeperHold>;
    /// Stop a keeper started by [`Kernel::start_keeper`] (its record could not be written).
    fn stop_keeper(&self, pid: u32);
}
