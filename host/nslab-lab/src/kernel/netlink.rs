//! The real kernel: namespaces made by the run's helper (netns.rs), each with its own netlink
//! socket, and the requests themselves in link.rs, route.rs and shaping.rs.

use std::os::fd::AsFd;

use super::netns::{Namespace, NsFactory};
use super::{link, route, shaping, Detailed, KeeperHold, Kernel, LinkChange, Principal, Route};
use crate::error::{LabError, LabResult};
use crate::input::Cidr;
use crate::persist::{keeper, pin};
use crate::Mode;

pub struct Netlink {
    pub factory: NsFactory,
}

impl Netlink {
    /// `exe` is the runner program, re-executed as the lab helper; `processes` bounds the
    /// processes of the run's user namespace (helper/mod.rs).
    pub fn new(exe: std::path::PathBuf, processes: u64, mode: Mode) -> Netlink {
        Netlink {
            factory: NsFactory::new(exe, processes, mode),
        }
    }
}

impl Kernel for Netlink {
    type Ns = Namespace;
    type Port = crate::helper::Helper;

    fn port(&self) -> LabResult<&crate::helper::Helper> {
        self.factory.helper()
    }

    fn ns_fd(ns: &Namespace) -> std::os::fd::BorrowedFd<'_> {
        ns.fd()
    }

    fn ns_box(ns: &Namespace) -> &super::NsBox {
        &ns.boxed
    }

    fn ns_box_mut(ns: &mut Namespace) -> &mut super::NsBox {
        &mut ns.boxed
    }

    fn link_handle(ns: &Namespace) -> LabResult<Option<rtnetlink::Handle>> {
        ns.kept_netlink().map(Some)
    }

    fn cgroup_janitor(&self) -> Option<&std::path::Path> {
        Some(self.factory.exe())
    }

    fn start(&mut self) -> LabResult<Option<Principal>> {
        if !self.factory.start_helper()? {
            return Ok(None);
        }
        let helper = self.factory.helper()?;
        Ok(Some(Principal {
            host_ids: helper.host_blocks(),
            userns: helper.userns_inode(),
        }))
    }

    async fn create_namespace(&mut self, name: &str) -> LabResult<(Namespace, u64)> {
        let ns = self.factory.create(name).await?;
        let inode = ns.inode;
        Ok((ns, inode))
    }

    fn requests(&self) -> u64 {
        self.factory.requests()
    }

    fn netlink_time(&self) -> std::time::Duration {
        self.factory.netlink_time()
    }

    async fn links(
        &self,
        ns: &Namespace,
        only: Option<(u32, &str)>,
    ) -> LabResult<Vec<link::LinkInfoView>> {
        match only {
            Some((index, name)) => link::describe(ns, Some(index), name).await,
            None => link::describe(ns, None, "").await,
        }
    }

    async fn link_index(&self, ns: &Namespace, name: &str) -> LabResult<Option<u32>> {
        Ok(link::find(ns, name).await?.map(|l| l.header.index))
    }

    async fn add_veth(
        &self,
        a: &str,
        a_ns: &Namespace,
        b: &str,
        b_ns: &Namespace,
    ) -> LabResult<(u32, u32)> {
        link::add_veth(a, a_ns, b, b_ns).await
    }

    async fn add_bridge(&self, ns: &Namespace, name: &str) -> LabResult<u32> {
        link::add_bridge(ns, name).await
    }

    async fn set_link(
        &self,
        ns: &Namespace,
        index: u32,
        change: LinkChange,
        what: &str,
    ) -> LabResult<()> {
        let msg = match change {
            LinkChange::Up(up) => link::up_down(index, up),
            LinkChange::Mtu(mtu) => link::mtu(index, mtu),
            LinkChange::Mac(mac) => link::mac(index, mac),
            LinkChange::Master(bridge) => link::master(index, bridge),
        };
        link::set(ns, msg, what).await
    }

    async fn move_link(
        &self,
        from: &Namespace,
        index: u32,
        name: &str,
        to: &Namespace,
        what: &str,
    ) -> LabResult<u32> {
        link::move_to(from, index, name, to, what).await
    }

    async fn add_address(
        &self,
        ns: &Namespace,
        index: u32,
        cidr: Cidr,
        what: &str,
    ) -> LabResult<()> {
        link::add_address(ns, index, cidr, what).await
    }

    async fn remove_address(
        &self,
        ns: &Namespace,
        index: u32,
        cidr: Cidr,
        what: &str,
    ) -> LabResult<()> {
        link::remove_address(ns, index, cidr, what).await
    }

    async fn set_shaping(
        &self,
        ns: &Namespace,
        index: u32,
        s: &shaping::Shaping,
        what: &str,
    ) -> LabResult<()> {
        shaping::set(ns, index, s, what).await
    }

    async fn clear_shaping(&self, ns: &Namespace, index: u32, what: &str) -> LabResult<()> {
        shaping::clear(ns, index, what).await
    }

    /// Per-namespace settings under /proc/sys/net resolve to the namespace of the process that
    /// opens them: the helper enters the namespace and writes them, so no thread of the runner
    /// ever changes namespace.
    async fn set_forwarding(&self, ns: &Namespace, on: bool, what: &str) -> LabResult<()> {
        self.factory
            .helper()?
            .set_forwarding(ns.fd(), on, what)
            .await
    }

    async fn add_route(&self, ns: &Namespace, r: &Route, what: &str) -> LabResult<()> {
        route::add(ns, r, what).await
    }

    async fn remove_route(&self, ns: &Namespace, r: &Route, what: &str) -> LabResult<()> {
        route::remove(ns, r, what).await
    }

    async fn routes(&self, ns: &Namespace) -> LabResult<Vec<Detailed>> {
        route::details(ns).await
    }

    async fn retire_link(&self, ns: &Namespace, index: u32, name: &str) -> LabResult<()> {
        let what = format!("retire link {index} of {} as {name}", ns.name);
        link::set(ns, link::retire(index, name), &what).await
    }

    fn pin(&self, ns: &Namespace, pinned: &str) -> LabResult<()> {
        pin::pin(ns.fd(), pinned)
            .map(|_| ())
            .map_err(|e| LabError::from_io(&e, format!("pin {} as /run/netns/{pinned}", ns.name)))
    }

    fn pin_files(&self, ns: &Namespace, pinned: &str) -> LabResult<Option<u64>> {
        let Some(boxfs) = &ns.boxed.boxfs else {
            return Ok(None);
        };
        let inode = nix::sys::stat::fstat(boxfs).map(|s| s.st_ino).unwrap_or(0);
        pin::pin_box(boxfs.as_fd(), pinned).map_err(|e| {
            LabError::from_io(
                &e,
                format!("pin the files of {} as {}/{pinned}", ns.name, pin::BOX_DIR),
            )
        })?;
        Ok(Some(inode))
    }

    fn unpin(&self, pinned: &str, inode: u64, files: Option<u64>) {
        let _ = pin::unpin(pinned, inode);
        if let Some(files) = files {
            let _ = pin::unpin_box(pinned, files);
        }
    }

    fn start_keeper(&self, namespaces: &[&Namespace]) -> LabResult<KeeperHold> {
        use std::os::fd::AsRawFd;
        let mut fds = vec![self.factory.helper()?.userns_fd()];
        // Where each namespace's and box's fd will be in the keeper, known before it starts.
        let at = |n: usize| keeper::FIRST_FD + n as i32;
        let mut places = Vec::new();
        for ns in namespaces {
            fds.push(ns.raw_fd());
            let net = at(fds.len() - 1);
            let files = match &ns.boxed.boxfs {
                Some(boxfs) => {
                    fds.push(boxfs.as_raw_fd());
                    let inode = nix::sys::stat::fstat(boxfs).map(|s| s.st_ino).unwrap_or(0);
                    Some((at(fds.len() - 1), inode))
                }
                None => None,
            };
            places.push((net, files));
        }
        let pid = keeper::start(self.factory.exe(), &fds)?;
        let start = crate::process::process_start(pid).unwrap_or(0);
        Ok(KeeperHold {
            pid,
            start,
            namespaces: places
                .into_iter()
                .map(|(net, files)| {
                    (
                        format!("/proc/{pid}/fd/{net}"),
                        files.map(|(fd, inode)| (format!("/proc/{pid}/fd/{fd}"), inode)),
                    )
                })
                .collect(),
        })
    }

    fn stop_keeper(&self, pid: u32) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
