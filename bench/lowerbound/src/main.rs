//! The lower bound the runner is measured against (bench/run.sh): the chain of `guests/chain`
//! (N namespaces, a veth pair between each and the next, a /30 on both ends, links up) built
//! with raw netlink as fast as this machine's kernel allows, and nothing else: no WebAssembly,
//! no policy, no narration, no box.
//!
//! - namespaces are unshared on one thread per CPU, each held only by an fd, each with a
//!   netlink socket opened inside it;
//! - every request of a phase is in flight at once (one tokio current-thread runtime);
//! - a veth pair is one request: the peer goes into the next namespace by fd, and both ends
//!   get interface indexes chosen here, so nothing is looked up;
//! - teardown closes every socket and fd; the kernel dismantles the namespaces on its own.
//!
//! `lowerbound N [--threads T]` prints `key=value` lines: setup_ms, teardown_ms, rss_kib.
//! (A rewrite of ../shared/bench/lowerbound, without its kernel-settle measurements.)

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Interface indexes in every namespace: lo is 1; the end toward the next namespace 2, the
/// end toward the previous one 3.
const LO: u32 = 1;
const TO_NEXT: u32 = 2;
const TO_PREVIOUS: u32 = 3;

/// A namespace: the fd that holds it, and a netlink socket opened inside it.
struct Raw {
    index: usize,
    fd: OwnedFd,
    socket: OwnedFd,
}

/// The addresses of pair `i`, as guests/chain gives them: 10.x.y.1/30 and .2/30.
fn addresses(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let (hi, lo) = (((i >> 6) & 0xff) as u8, ((i & 0x3f) << 2) as u8);
    (Ipv4Addr::new(10, hi, lo, 1), Ipv4Addr::new(10, hi, lo, 2))
}

fn unshare_one(index: usize) -> Result<Raw, Error> {
    unshare(CloneFlags::CLONE_NEWNET)?;
    let fd: OwnedFd = File::open("/proc/thread-self/ns/net")?.into();
    let socket = Socket::new(NETLINK_ROUTE)?;
    // SAFETY: the fd was just made by Socket::new and is owned by nothing else now.
    let socket = unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) };
    Ok(Raw { index, fd, socket })
}

/// N namespaces, made on `threads` threads side by side (each goes home when done).
fn namespaces(n: usize, threads: usize) -> Result<Vec<Raw>, Error> {
    let threads = threads.clamp(1, n);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || -> Result<Vec<Raw>, String> {
                let home: OwnedFd = File::open("/proc/thread-self/ns/net")
                    .map_err(|e| e.to_string())?
                    .into();
                let made = (t..n)
                    .step_by(threads)
                    .map(|i| unshare_one(i).map_err(|e| format!("namespace {i}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                setns(&home, CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
                Ok(made)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.join().map_err(|_| "a namespace thread panicked")??);
    }
    all.sort_by_key(|r| r.index);
    Ok(all)
}

/// The veth pair from a namespace to the next, created from the first with its peer placed by fd.
fn veth(next: &OwnedFd) -> rtnetlink::packet_route::link::LinkMessage {
    let peer = LinkUnspec::new_with_name("left")
        .setns_by_fd(next.as_raw_fd())
        .index(TO_PREVIOUS);
    LinkVeth::new("right", "left")
        .index(TO_NEXT)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .up()
        .build()
}

async fn all(
    futures: FuturesUnordered<impl std::future::Future<Output = Result<(), Error>>>,
) -> Result<(), Error> {
    let mut futures = futures;
    while let Some(r) = futures.next().await {
        r?;
    }
    Ok(())
}

async fn chain(n: usize, threads: usize) -> Result<(Duration, Duration), Error> {
    let started = Instant::now();
    let raw = namespaces(n, threads)?;
    let mut fds = Vec::with_capacity(n);
    let mut handles: Vec<Handle> = Vec::with_capacity(n);
    let mut connections = tokio::task::JoinSet::new();
    for r in raw {
        // SAFETY: the socket's fd moves into the tokio socket, which owns it from here.
        let socket = unsafe { TokioSocket::from_raw_fd(r.socket.into_raw_fd()) };
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        connections.spawn(connection);
        handles.push(handle);
        fds.push(r.fd);
    }
    all((0..n - 1)
        .map(|i| {
            let (h, msg) = (handles[i].clone(), veth(&fds[i + 1]));
            async move {
                Ok(h.link()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(|e| format!("veth {i}: {e}"))?)
            }
        })
        .collect())
    .await?;
    all((0..n)
        .map(|i| {
            let h = handles[i].clone();
            async move {
                let lo = h
                    .link()
                    .set(LinkUnspec::new_with_index(LO).up().build())
                    .execute();
                let next = async {
                    if i + 1 < n {
                        let ip = IpAddr::V4(addresses(i + 1).0);
                        h.address().add(TO_NEXT, ip, 30).execute().await?;
                    }
                    Ok::<(), rtnetlink::Error>(())
                };
                let previous = async {
                    if i > 0 {
                        let ip = IpAddr::V4(addresses(i).1);
                        h.address().add(TO_PREVIOUS, ip, 30).execute().await?;
                        let up = LinkUnspec::new_with_index(TO_PREVIOUS).up().build();
                        h.link().set(up).execute().await?;
                    }
                    Ok::<(), rtnetlink::Error>(())
                };
                let (a, b, c) = futures::join!(lo, next, previous);
                a.and(b)
                    .and(c)
                    .map_err(|e| format!("namespace {i}: {e}").into())
            }
        })
        .collect())
    .await?;
    let setup = started.elapsed();
    let started = Instant::now();
    drop(handles);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    drop(fds);
    Ok((setup, started.elapsed()))
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: lowerbound N [--threads T]";
    let n: usize = args.next().ok_or(usage)?.parse().map_err(|_| usage)?;
    let mut threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().ok_or(usage)?.parse().map_err(|_| usage)?,
            _ => return Err(usage.into()),
        }
    }
    if n < 2 {
        return Err("N is at least 2".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (setup, teardown) = rt.block_on(chain(n, threads))?;
    // SAFETY: getrusage fills the struct it is given, nothing else.
    let rss = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage.ru_maxrss
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(
        &mut out,
        format!(
            "n={n}\nsetup_ms={:.1}\nteardown_ms={:.1}\nrss_kib={rss}\n",
            ms(setup),
            ms(teardown)
        )
        .as_bytes(),
    )?;
    Ok(())
}
