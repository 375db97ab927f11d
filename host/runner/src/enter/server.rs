//! The run's side of stepping in: its control socket, served by threads of their own (never a
//! tokio worker: a start may wait on the helper, a program for hours), each connection one
//! request. The lab is never touched: what the operator starts goes through the lab's doors
//! (lab/doors.rs). What needs the lab itself (a door opened while the run holds, the end of the
//! hold) is asked of the hold (run/hold.rs), and answered only while the run holds.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{
    accept4, bind, getsockopt, listen, shutdown, socket, sockopt, AddressFamily, Backlog, Shutdown,
    SockFlag, SockType, UnixAddr,
};

use super::wire::{self, Answer, Ask};
use nslab_lab::operator;
use nslab_lab::operator::{Doors, Entry, Shut};

/// What a connection asks of the hold, which owns the lab.
pub enum ToHold {
    /// End the hold; answered with whether the run was holding.
    Release,
    /// Open the door of a namespace (its box made now); answered with why not.
    OpenDoor(String, std::sync::mpsc::Sender<Result<(), String>>),
}

/// The line from the control socket to the hold.
#[derive(Clone)]
pub struct HoldLine {
    pub to_hold: tokio::sync::mpsc::UnboundedSender<ToHold>,
    /// Whether the run holds now (the hold reads `to_hold` only then).
    pub holding: Arc<AtomicBool>,
}

/// The run's control socket, answering until [`Server::stop`].
pub struct Server {
    path: PathBuf,
    /// Written to stop the accepting thread.
    stop: OwnedFd,
    accepting: Option<std::thread::JoinHandle<()>>,
    /// Every connection still served, to end them all when the run ends.
    live: Arc<Mutex<Vec<Arc<OwnedFd>>>>,
}

/// What each connection's thread shares.
#[derive(Clone)]
struct Context {
    run: String,
    doors: Arc<Doors>,
    hold: HoldLine,
    /// Who may step in besides root: the runner's own user.
    owner: u32,
}

impl Server {
    /// Listen at `dir`/RUN.sock for run `run`.
    pub fn start(
        dir: &Path,
        run: &str,
        doors: Arc<Doors>,
        hold: HoldLine,
    ) -> std::io::Result<Server> {
        nslab_lab::records::own_dir(dir)?;
        let path = super::socket_path(dir, run);
        let listener = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        // The run id is new, but a runner killed with the same id long ago may have left one.
        let _ = std::fs::remove_file(&path);
        bind(listener.as_raw_fd(), &UnixAddr::new(&path)?)?;
        // The directory is the user's own already; the socket is too.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        listen(&listener, Backlog::new(16)?)?;
        let (stop_read, stop) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let live: Arc<Mutex<Vec<Arc<OwnedFd>>>> = Arc::default();
        let context = Context {
            run: run.to_string(),
            doors,
            hold,
            owner: nix::unistd::geteuid().as_raw(),
        };
        let accepting = {
            let live = live.clone();
            std::thread::Builder::new()
                .name("nslab-control".into())
                .spawn(move || accept_all(listener, stop_read, context, live))?
        };
        Ok(Server {
            path,
            stop,
            accepting: Some(accepting),
            live,
        })
    }

    /// Stop answering, end every connection (a capture's stream then ends whole; a program's
    /// client learns its end from the program's status, which comes as the lab ends it), and
    /// remove the socket.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        let _ = nix::unistd::write(&self.stop, b"x");
        if let Some(t) = self.accepting.take() {
            let _ = t.join();
        }
        for conn in self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = shutdown(conn.as_raw_fd(), Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accepting.is_some() {
            self.shut();
        }
    }
}

fn readable(fds: &[RawFd], timeout: Option<Duration>) -> Vec<bool> {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    super::ready(fds, ms).unwrap_or_else(|_| vec![false; fds.len()])
}

fn accept_all(
    listener: OwnedFd,
    stop: OwnedFd,
    context: Context,
    live: Arc<Mutex<Vec<Arc<OwnedFd>>>>,
) {
    loop {
        let ready = readable(&[listener.as_raw_fd(), stop.as_raw_fd()], None);
        if ready[1] {
            return;
        }
        if !ready[0] {
            continue;
        }
        let Ok(conn) = accept4(&listener, SockFlag::SOCK_CLOEXEC) else {
            continue;
        };
        let conn = Arc::new(conn);
        {
            let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
            live.retain(|c| Arc::strong_count(c) > 1);
            live.push(conn.clone());
        }
        let context = context.clone();
        let _ = std::thread::Builder::new()
            .name("nslab-operator".into())
            .spawn(move || serve(&conn, &context));
    }
}

fn refuse(conn: RawFd, status: i32, why: String) {
    let _ = wire::send(conn, &Answer::Refused { status, why }, &[]);
}

/// One connection: who it is, then its one request.
fn serve(conn: &OwnedFd, context: &Context) {
    let fd = conn.as_raw_fd();
    let Ok(peer) = getsockopt(&conn.as_fd(), sockopt::PeerCredentials) else {
        return;
    };
    if peer.uid() != context.owner && peer.uid() != 0 {
        return refuse(
            fd,
            2,
            format!(
                "run {} is not yours: only its own user (uid {}) and root may step into it",
                context.run, context.owner
            ),
        );
    }
    let Ok(Some((ask, fds))) = wire::receive::<Ask>(fd) else {
        return;
    };
    match ask {
        Ask::Exec {
            ns,
            argv,
            env,
            terminal,
        } => {
            let Ok(stdio) = <[OwnedFd; 3]>::try_from(fds) else {
                return refuse(fd, 2, "exec takes stdin, stdout and stderr".into());
            };
            match context.enter(&ns) {
                Ok(entry) => exec(fd, entry, &argv, &env, stdio, terminal),
                Err(why) => refuse(fd, 2, why),
            }
        }
        Ask::Capture { ns, iface } => {
            // The door is let go of at once: nothing of the lab's is held while the
            // capture goes on.
            let socket = context.enter(&ns).and_then(|entry| {
                entry
                    .starter
                    .packet_socket(entry.room.netns.as_raw_fd(), &iface)
                    .map_err(|e| format!("namespace {ns}: {e}"))
            });
            match socket {
                Ok(socket) => {
                    if wire::send(fd, &Answer::Socket, &[socket.as_raw_fd()]).is_ok() {
                        drop(socket);
                        // Held open until the client is done or the run ends, which the
                        // client learns from its end of this connection.
                        while let Ok(Some(_)) = wire::receive::<Ask>(fd) {}
                    }
                }
                Err(why) => refuse(fd, 2, why),
            }
        }
        Ask::Release => {
            if context.hold.holding.load(Ordering::SeqCst)
                && context.hold.to_hold.send(ToHold::Release).is_ok()
            {
                let _ = wire::send(fd, &Answer::Released, &[]);
            } else {
                refuse(
                    fd,
                    1,
                    format!(
                        "run {} is not held: it ends when its scenario does (Ctrl-C in its \
                         terminal stops it sooner)",
                        context.run
                    ),
                );
            }
        }
        Ask::Signal(_) => {}
    }
}

impl Context {
    /// The door of namespace `ns`: open already, or opened now by the hold.
    fn enter(&self, ns: &str) -> Result<Entry, String> {
        match self.doors.enter(ns) {
            Ok(entry) => Ok(entry),
            Err(Shut::NoSuchNamespace(names)) => Err(format!(
                "run {} has no namespace {ns:?}; it has: {}",
                self.run,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )),
            Err(Shut::Closed) => Err(format!("run {} is ending", self.run)),
            Err(Shut::NotOpenYet) if !self.hold.holding.load(Ordering::SeqCst) => Err(format!(
                "namespace {ns} of run {} has run no program yet, and the run is busy with its \
                 scenario: step in once the scenario runs a program there, or when the run \
                 holds (runner run --hold or --hold-on-fail)",
                self.run
            )),
            Err(Shut::NotOpenYet) => {
                let (tx, rx) = std::sync::mpsc::channel();
                self.hold
                    .to_hold
                    .send(ToHold::OpenDoor(ns.to_string(), tx))
                    .map_err(|_| format!("run {} is ending", self.run))?;
                match rx.recv_timeout(Duration::from_secs(30)) {
                    Ok(Ok(())) => self
                        .doors
                        .enter(ns)
                        .map_err(|_| format!("run {} is ending", self.run)),
                    Ok(Err(why)) => Err(format!("namespace {ns}: {why}")),
                    Err(_) => Err(format!("run {} is ending", self.run)),
                }
            }
        }
    }
}

/// Start the operator's program, say so, and pass on signals until it ends: its status is
/// the answer. A client that goes away takes its program with it.
fn exec(
    conn: RawFd,
    entry: Entry,
    argv: &[String],
    env: &[(String, String)],
    stdio: [OwnedFd; 3],
    terminal: bool,
) {
    let program = match operator::start(entry, argv, env, stdio, terminal) {
        Ok(p) => p,
        Err(e) => return refuse(conn, e.status, e.why),
    };
    if wire::send(conn, &Answer::Started, &[]).is_err() {
        program.signal(libc::SIGKILL);
    }
    loop {
        let ready = readable(&[program.exit_status.as_raw_fd(), conn], None);
        if ready[0] {
            let status = program.status();
            let _ = wire::send(conn, &Answer::Exited(status), &[]);
            return;
        }
        if ready[1] {
            match wire::receive::<Ask>(conn) {
                Ok(Some((Ask::Signal(sig), _)))
                    if [libc::SIGINT, libc::SIGTERM, libc::SIGHUP].contains(&sig) =>
                {
                    program.signal(sig)
                }
                Ok(Some(_)) => {}
                // The operator's side is gone (or the run is ending): so is the program.
                _ => {
                    program.signal(libc::SIGKILL);
                    let _ = readable(
                        &[program.exit_status.as_raw_fd()],
                        Some(Duration::from_secs(5)),
                    );
                    return;
                }
            }
        }
    }
}
