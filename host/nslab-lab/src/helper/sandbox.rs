//! The filesystem a lab namespace's programs see: a mount namespace built once per lab namespace,
//! inside the run's user namespace, in the way bubblewrap builds its sandboxes.
//!
//! - `/usr`, `/etc` and the `/bin`, `/sbin`, `/lib*` entries of the host, read-only and
//!   `noexec` (bound, or the same symlinks on a merged-/usr system); nothing else of the host:
//!   no `/root`, `/home`, host `/run`, `/var/lib`, `/tmp`. A file the scenario gives the
//!   namespace there (`/etc/bird/bird.conf`) is the box's own, mounted in place in this box only
//!   (lab/helper/).
//! - **Only the run's code executable**: the allowed programs, their loader, the shared objects
//!   they need and the directories they load modules from (programs/code.rs) are bound again,
//!   each at its own path, read-only but executable. Every other mount of the box is `noexec`,
//!   which the kernel applies to the loader's `mmap(PROT_EXEC)` too: `ld-linux-x86-64.so.2
//!   /usr/bin/id` cannot map `id`, and nothing a program writes can be mapped as code.
//! - `/tmp`, `/run` (and `/var/run`), `/var` (with `/var/tmp`), `/dev/shm`: writable, private to
//!   this lab namespace, all on one tmpfs of at most `scratch-bytes`, shared by the namespace's
//!   programs.
//! - `/nslab/bin/NAME`: each program the operator allowed by path (`--allow-exec ./sut`),
//!   read-only.
//! - its own UTS namespace, the lab namespace's name as host name (`set-hostname` changes it).
//! - `/dev`: null, zero, full, random, urandom (bound from the host) and the /proc/self links;
//!   no terminal, no disk.
//! - `/proc`: a proc of an empty PID namespace, so that each program may mount the proc of its
//!   own PID namespace over it (the kernel lets a user namespace mount proc only where one is
//!   already fully visible), and unmounting that reveals no process at all.
//! - `/sys`: the lab namespace's own sysfs, read-only (its links, nothing of the host's devices
//!   and no cgroup tree), mounted by the builder from inside that namespace while the host's
//!   /sys is still visible to it (the kernel's condition for a user namespace to mount sysfs).
//!   A program that unmounts it finds an empty directory.
//!
//! The runner holds the namespace by fd. When the run ends (even by SIGKILL) the fd closes, the
//! programs die with their PID namespaces, and the kernel frees the mounts and every file the
//! programs wrote.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Where the new root is assembled, in the builder's own mount namespace only.
const STAGE: &str = "/tmp";

/// Host directories shown read-only, when they exist.
const SYSTEM_DIRS: &[&str] = &[
    "usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32",
];

/// [`SYSTEM_DIRS`] as the box shows them, for an init, which may not allocate.
const SYSTEM_DIR_PATHS: &[&std::ffi::CStr] = &[
    c"/usr", c"/etc", c"/bin", c"/sbin", c"/lib", c"/lib32", c"/lib64", c"/libx32",
];

/// In the init of an operator's program, in its own copy of the box: the system directories
/// executable again. Allocates nothing and leaves errno alone (the init shares the helper's
/// memory). A directory the
/// host lacks, or a link on a merged-/usr system (its mount is /usr's), is passed over; if a
/// mount below one is the host's own `noexec`, which the kernel locks, that directory alone
/// is made executable.
pub fn executable_system_dirs() {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: MOUNT_ATTR_NOEXEC,
        propagation: 0,
        userns_fd: 0,
    };
    for path in SYSTEM_DIR_PATHS {
        for flags in [
            AT_RECURSIVE | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
            libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
        ] {
            // SAFETY: mount_setattr(2) with a NUL-terminated path and a struct of the size we
            // pass, as a raw system call: the init shares the helper's memory, errno included,
            // and nothing may touch it.
            let r = unsafe {
                super::rawsys::call(
                    libc::SYS_mount_setattr,
                    [
                        libc::AT_FDCWD as usize,
                        path.as_ptr() as usize,
                        flags as usize,
                        &attr as *const MountAttr as usize,
                        size_of::<MountAttr>(),
                        0,
                    ],
                )
            };
            // Only a lock below it is worth the second try: a link or a missing directory
            // (EINVAL, ENOENT) is not a mount at all.
            if r != -(libc::EPERM as isize) {
                break;
            }
        }
    }
}

/// Where programs the operator allowed by path are found in the box.
pub const PROGRAM_DIR: &str = "/nslab/bin";

/// Device nodes bound from the host: the harmless ones every program expects.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Make a mount (and with `recursive`, every mount below it) read-only, nosuid and nodev.
fn read_only(path: &Path, recursive: bool) -> nix::Result<()> {
    set_attributes(
        path,
        recursive,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
}

/// [`read_only`], and no code mapped or executed from it.
fn inert(path: &Path, recursive: bool) -> nix::Result<()> {
    set_attributes(
        path,
        recursive,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )
}

fn set_attributes(path: &Path, recursive: bool, attributes: u64) -> nix::Result<()> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: attributes,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr(2) with a valid path and a struct of the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn io(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A directory of exactly `mode`: [`assemble`] runs with a umask of 0.
fn mkdir(path: &Path, mode: u32) -> nix::Result<()> {
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(io)
}

fn bind(src: &Path, dst: &Path) -> nix::Result<()> {
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
}

/// A tmpfs: nothing on it is ever a device, set-id or code.
fn tmpfs(dst: &Path, options: &str) -> nix::Result<()> {
    mount(
        Some("nslab"),
        dst,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(options),
    )
}

/// Build the box in the calling process, which must be single-threaded, root of the run's user
/// namespace, and about to exit: it unshares a mount (and PID) namespace and returns the mount
/// namespace's fd. `scratch_bytes` bounds what programs may write, all places together.
pub fn build(
    scratch_bytes: u64,
    programs: &[(String, std::path::PathBuf)],
    code: &[std::path::PathBuf],
    netns: &OwnedFd,
    hostname: &str,
) -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::sched::{unshare, CloneFlags};
    use nix::unistd::{setresgid, setresuid, Gid, Uid};
    // The helper is still the host's root, which the user namespace does not map: files it made
    // would have no owner there (EOVERFLOW). Root of the namespace is mapped.
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS)?;
    let ns: OwnedFd = std::fs::File::open("/proc/self/ns/mnt").map_err(io)?.into();
    // The lab namespace's own host name, its name unless the scenario sets another: daemons'
    // prompts and logs say which router they are, not the host's name.
    nix::unistd::sethostname(hostname)?;
    let uts: OwnedFd = std::fs::File::open("/proc/self/ns/uts").map_err(io)?.into();
    // Nothing mounted here may propagate back to the host, or from it.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    // Only a process inside the new PID namespace can mount its (empty) proc.
    // SAFETY: the caller is single-threaded.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // Dies with the builder (which waits for it; getppid() is 0 across PID namespaces).
            if !crate::process::set_pdeathsig() {
                // SAFETY: leave the forked copy at once.
                unsafe { libc::_exit(libc::ESRCH) }
            }
            let code = match assemble(scratch_bytes, programs, code, netns) {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            // SAFETY: leave without running the parent's destructors twice.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None)? {
            nix::sys::wait::WaitStatus::Exited(_, 0) => Ok((ns, uts)),
            nix::sys::wait::WaitStatus::Exited(_, code) => Err(Errno::from_raw(code)),
            _ => Err(Errno::ECHILD),
        },
    }
}

/// Assemble the new root under [`STAGE`] and make it this mount namespace's root.
fn assemble(
    scratch_bytes: u64,
    programs: &[(String, std::path::PathBuf)],
    code: &[std::path::PathBuf],
    netns: &OwnedFd,
) -> nix::Result<()> {
    // Every mode given below is exact (a chmod after each mkdir was 16 calls a box). What is
    // created otherwise here is a mount point, covered by what is bound over it.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    // Opened before the stage hides the host's /tmp, where a program under test may live.
    let files = programs
        .iter()
        .map(|(name, path)| Ok((name, std::fs::File::open(path).map_err(io)?)))
        .collect::<nix::Result<Vec<_>>>()?;
    let root = Path::new(STAGE);
    tmpfs(root, "mode=0755,size=1m")?;
    for name in SYSTEM_DIRS {
        let host = Path::new("/").join(name);
        let inside = root.join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                symlink(std::fs::read_link(&host).map_err(io)?, &inside).map_err(io)?
            }
            Ok(m) if m.is_dir() => {
                mkdir(&inside, 0o755)?;
                bind(&host, &inside)?;
                inert(&inside, true)?;
            }
            _ => {}
        }
    }
    // The run's code, executable again at its own paths (canonical ones, so no link is
    // followed on the way); what lies outside the system directories is not in the box at all.
    for path in code {
        let Ok(inside_path) = path.strip_prefix("/") else {
            continue;
        };
        let under_system = inside_path
            .components()
            .next()
            .is_some_and(|c| SYSTEM_DIRS.iter().any(|d| c.as_os_str() == *d));
        let inside = root.join(inside_path);
        if !under_system || std::fs::symlink_metadata(&inside).is_err() {
            continue;
        }
        bind(path, &inside)?;
        read_only(&inside, true)?;
    }
    for dir in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "var",
        "nslab",
        "nslab/bin",
    ] {
        mkdir(&root.join(dir), 0o755)?;
    }

    // The one writable place, seen at several paths.
    let scratch = root.join("proc");
    tmpfs(&scratch, &format!("mode=0755,size={scratch_bytes}"))?;
    for (sub, mode) in [
        ("tmp", 0o1777),
        ("run", 0o755),
        ("var", 0o755),
        ("var/tmp", 0o1777),
        ("shm", 0o1777),
    ] {
        mkdir(&scratch.join(sub), mode)?;
    }
    symlink("../run", scratch.join("var/run")).map_err(io)?;
    for sub in ["tmp", "run", "var"] {
        bind(&scratch.join(sub), &root.join(sub))?;
    }
    for (name, file) in files {
        let inside = root.join("nslab/bin").join(name);
        std::fs::File::create(&inside).map_err(io)?;
        let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        bind(Path::new(&source), &inside)?;
        read_only(&inside, false)?;
    }

    let dev = root.join("dev");
    tmpfs(&dev, "mode=0755,size=64k")?;
    for name in DEVICES {
        let node = dev.join(name);
        std::fs::File::create(&node).map_err(io)?;
        bind(&Path::new("/dev").join(name), &node)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(link)).map_err(io)?;
    }
    mkdir(&dev.join("shm"), 0o1777)?;
    bind(&scratch.join("shm"), &dev.join("shm"))?;
    read_only(&dev, false)?;
    // What is bound from the scratch tmpfs keeps it; the staging mount goes.
    umount2(&scratch, MntFlags::MNT_DETACH)?;

    // A proc of this (empty) PID namespace: each program mounts its own over it.
    let hidden = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("proc"),
        &root.join("proc"),
        Some("proc"),
        hidden,
        None::<&str>,
    )?;
    // The lab namespace's sysfs: a sysfs shows the devices of the network namespace of the
    // process that mounts it. Never the host's /sys, which a program could uncover by
    // unmounting whatever was put over it. Where the kernel refuses, /sys stays empty.
    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let _ = mount(
        Some("sysfs"),
        &root.join("sys"),
        Some("sysfs"),
        hidden | MsFlags::MS_RDONLY,
        None::<&str>,
    );

    // Switch roots and drop the host's tree from this namespace altogether.
    nix::unistd::chdir(root)?;
    nix::unistd::pivot_root(".", ".")?;
    umount2(".", MntFlags::MNT_DETACH)?;
    nix::unistd::chdir("/")?;
    read_only(Path::new("/"), false)
}
