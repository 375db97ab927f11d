//! The operator's side: `runner exec`, `runner shell`, `runner capture` and `runner release`.
//! RUN is found first (find.rs), and a run that is not the caller's is refused before anything
//! of it is opened; a live or held run is asked over its control socket (after checking that
//! the runner recorded for it is what answers), a kept one entered directly (kept.rs).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{
    connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, UnixAddr,
};

use super::signals::{signals, take_signal};
use super::wire::{self, Answer, Ask};
use super::{capture, failed, find, foreign, kept, relay, status, terminal, Outcome};
use nslab_lab::records::{RunRecord, RunStatus};

/// Where a command goes: the run's control socket, or the kept lab itself.
enum Target {
    Live(OwnedFd),
    Kept,
}

fn target(run: &str) -> Result<(RunRecord, Target), String> {
    let find::Found {
        record: rec,
        status,
    } = find::run(run)?;
    if status == RunStatus::Kept {
        return Ok((rec, Target::Kept));
    }
    let path = super::socket_path(&rec.dir, &rec.id);
    let conn = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    let addr = UnixAddr::new(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    connect(conn.as_raw_fd(), &addr).map_err(|e| {
        format!(
            "run {} does not answer at {} ({}): a runner older than `runner exec`, or one \
             that is ending",
            rec.id,
            path.display(),
            e.desc()
        )
    })?;
    // Only the run's own runner may be told the operator's terminal.
    let peer = getsockopt(&conn, sockopt::PeerCredentials).map_err(|e| format!("{e}"))?;
    if peer.pid() as u32 != rec.pid {
        return Err(format!(
            "what answers at {} is not run {}'s runner (pid {}, not {}): nothing was sent",
            path.display(),
            rec.id,
            peer.pid(),
            rec.pid
        ));
    }
    Ok((rec, Target::Live(conn)))
}

/// The environment an operator's program gets: the terminal type, and a prompt that names the
/// run and the namespace.
fn environment(rec: &RunRecord, ns: &str, shell: bool) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_string(), "/tmp".to_string()),
        ("NSLAB_RUN".to_string(), rec.id.clone()),
        ("NSLAB_NS".to_string(), ns.to_string()),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".into(), term));
    }
    if shell {
        env.push(("PS1".into(), format!("[{} {ns}] \\u@\\h:\\w\\$ ", rec.id)));
    }
    env
}

/// The shell `runner shell` starts: bash without the host's start-up files (which would put
/// their own prompt over the run's), else sh.
fn shell_argv() -> Vec<String> {
    match nslab_lab::host::in_system_path("bash") {
        Some(_) => vec![
            "bash".into(),
            "--norc".into(),
            "--noprofile".into(),
            "-i".into(),
        ],
        None => vec!["sh".into(), "-i".into()],
    }
}

/// Wait on the control connection for the program's end, passing on signals.
fn await_end(conn: &OwnedFd, sigs: &OwnedFd, run: &str) -> Outcome {
    loop {
        let Ok(polls) = super::ready(&[conn.as_raw_fd(), sigs.as_raw_fd()], -1) else {
            continue;
        };
        if polls[1] {
            if let Some(sig) = take_signal(sigs) {
                let _ = wire::send(conn.as_raw_fd(), &Ask::Signal(sig), &[]);
            }
        }
        if polls[0] {
            return match wire::receive::<Answer>(conn.as_raw_fd()) {
                Ok(Some((Answer::Exited(code), _))) => Outcome {
                    status: status(code),
                    said: None,
                },
                Ok(Some((Answer::Refused { status: s, why }, _))) => failed(status(s), why),
                Ok(Some(_)) => continue,
                _ => failed(
                    137,
                    format!("run {run} ended, and what was started in it ended with it"),
                ),
            };
        }
    }
}

/// `runner exec RUN NS -- CMD ARGS`: CMD with the operator's own stdin, stdout and stderr.
pub fn exec(run: &str, ns: &str, argv: Vec<String>) -> Outcome {
    let (rec, target) = match target(run) {
        Ok(t) => t,
        Err(why) => return failed(2, why),
    };
    let env = environment(&rec, ns, false);
    match target {
        Target::Live(conn) => {
            let ask = Ask::Exec {
                ns: ns.to_string(),
                argv,
                env,
                terminal: false,
            };
            if !foreign(&rec) {
                return match ask_run(&conn, &rec, &ask, &[0, 1, 2]) {
                    Ok(sigs) => started_then(&conn, &sigs, &rec.id, |_| {}),
                    Err(outcome) => outcome,
                };
            }
            let (piped, theirs) = match relay::pipes() {
                Ok(p) => p,
                Err(e) => return failed(2, format!("cannot make pipes: {e}")),
            };
            let sigs = match ask_run(
                &conn,
                &rec,
                &ask,
                &theirs.each_ref().map(AsRawFd::as_raw_fd),
            ) {
                Ok(sigs) => sigs,
                Err(outcome) => return outcome,
            };
            drop(theirs);
            started_then(&conn, &sigs, &rec.id, |done| {
                relay::relay(piped, done, sigs.as_raw_fd(), &mut |sig| {
                    let _ = wire::send(conn.as_raw_fd(), &Ask::Signal(sig), &[]);
                })
            })
        }
        Target::Kept => kept::run(&rec, ns, &argv, &env, None),
    }
}

/// Watch for signals, then ask the run `ask` with `fds`: the signals' pipe, or why not.
fn ask_run(conn: &OwnedFd, rec: &RunRecord, ask: &Ask, fds: &[RawFd]) -> Result<OwnedFd, Outcome> {
    let sigs = signals().map_err(|e| failed(2, format!("cannot watch for signals: {e}")))?;
    wire::send(conn.as_raw_fd(), ask, fds)
        .map_err(|e| failed(2, format!("cannot ask run {}: {e}", rec.id)))?;
    Ok(sigs)
}

/// After an exec request: the program's start, then its end (with `relay` between, for a
/// shell's terminal).
fn started_then(conn: &OwnedFd, sigs: &OwnedFd, run: &str, relay: impl FnOnce(RawFd)) -> Outcome {
    match wire::receive::<Answer>(conn.as_raw_fd()) {
        Ok(Some((Answer::Started, _))) => {
            relay(conn.as_raw_fd());
            await_end(conn, sigs, run)
        }
        Ok(Some((Answer::Refused { status: s, why }, _))) => failed(status(s), why),
        _ => failed(2, format!("run {run} ended before it answered")),
    }
}

/// `runner shell RUN NS [-- CMD ARGS]`: an interactive shell (or CMD) on a terminal of its own.
pub fn shell(run: &str, ns: &str, command: Vec<String>) -> Outcome {
    let (rec, target) = match target(run) {
        Ok(t) => t,
        Err(why) => return failed(2, why),
    };
    let argv = if command.is_empty() {
        shell_argv()
    } else {
        command
    };
    let env = environment(&rec, ns, true);
    let (master, slave) = match terminal::open() {
        Ok(p) => p,
        Err(e) => return failed(2, format!("cannot make a terminal: {e}")),
    };
    match target {
        Target::Live(conn) => {
            let ask = Ask::Exec {
                ns: ns.to_string(),
                argv,
                env,
                terminal: true,
            };
            let fd = slave.as_raw_fd();
            let sigs = match ask_run(&conn, &rec, &ask, &[fd, fd, fd]) {
                Ok(sigs) => sigs,
                Err(outcome) => return outcome,
            };
            // Only the shell holds its terminal now: its end is the relay's end.
            drop(slave);
            started_then(&conn, &sigs, &rec.id, |done| {
                let _raw = terminal::Raw::new();
                terminal::relay(&master, done);
            })
        }
        Target::Kept => kept::run(&rec, ns, &argv, &env, Some((&master, &slave))),
    }
}

/// `runner capture RUN NS IFACE [-w FILE] [-c COUNT]`.
pub fn capture(
    run: &str,
    ns: &str,
    iface: &str,
    file: Option<PathBuf>,
    count: Option<u64>,
) -> Outcome {
    let (rec, target) = match target(run) {
        Ok(t) => t,
        Err(why) => return failed(2, why),
    };
    let (socket, conn, down_ends) = match target {
        Target::Live(conn) => {
            let ask = Ask::Capture {
                ns: ns.to_string(),
                iface: iface.to_string(),
            };
            if let Err(e) = wire::send(conn.as_raw_fd(), &ask, &[]) {
                return failed(2, format!("cannot ask run {}: {e}", rec.id));
            }
            match wire::receive::<Answer>(conn.as_raw_fd()) {
                Ok(Some((Answer::Socket, mut fds)))
                    if fds.len() == 1 && is_packet_socket(&fds[0]) =>
                {
                    (fds.remove(0), Some(conn), false)
                }
                Ok(Some((Answer::Refused { status: s, why }, _))) => return failed(status(s), why),
                _ => return failed(2, format!("run {} ended before it answered", rec.id)),
            }
        }
        Target::Kept => {
            let door = match kept::door(&rec, ns) {
                Ok(d) => d,
                Err(why) => return failed(2, why),
            };
            match kept::packet_socket(&door, iface) {
                Ok(s) => (s, None, true),
                Err(why) => return failed(2, format!("namespace {ns}: {why}")),
            }
        }
    };
    let sigs = match signals() {
        Ok(s) => s,
        Err(e) => return failed(2, format!("cannot watch for signals: {e}")),
    };
    let out = match capture::sink(file.as_deref()) {
        Ok(o) => o,
        Err(e) => {
            return failed(
                2,
                format!(
                    "-w {}: {e}",
                    file.as_deref()
                        .unwrap_or(std::path::Path::new("-"))
                        .display()
                ),
            )
        }
    };
    match capture::stream(
        &socket,
        out,
        count,
        sigs.as_raw_fd(),
        conn.as_ref().map(AsRawFd::as_raw_fd),
        down_ends,
    ) {
        Ok((n, ended)) => {
            let why = match ended {
                capture::Ended::Counted => "as many as asked",
                capture::Ended::Signal => "stopped",
                capture::Ended::RunEnded => "the run ended",
                capture::Ended::ReaderGone => "the reader went away",
            };
            Outcome {
                status: 0,
                said: Some(format!("{n} packets captured on {ns} {iface} ({why})")),
            }
        }
        Err(e) => failed(1, format!("capturing on {ns} {iface}: {e}")),
    }
}

/// Whether `fd` is a packet socket: what a run answers a capture with is read as frames only
/// if it is one (another user's run could answer with anything).
fn is_packet_socket(fd: &OwnedFd) -> bool {
    let mut domain: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int of the size given.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && domain == libc::AF_PACKET
}

/// `runner release RUN`: end a hold from another terminal.
pub fn release(run: &str) -> Outcome {
    let (rec, target) = match target(run) {
        Ok(t) => t,
        Err(why) => return failed(2, why),
    };
    let Target::Live(conn) = target else {
        return failed(
            1,
            format!(
                "run {} is kept, not held: runner cleanup {} removes it",
                rec.id, rec.id
            ),
        );
    };
    if let Err(e) = wire::send(conn.as_raw_fd(), &Ask::Release, &[]) {
        return failed(2, format!("cannot ask run {}: {e}", rec.id));
    }
    match wire::receive::<Answer>(conn.as_raw_fd()) {
        Ok(Some((Answer::Released, _))) => Outcome {
            status: 0,
            said: Some(format!("released run {}: its lab is being removed", rec.id)),
        },
        Ok(Some((Answer::Refused { status: s, why }, _))) => failed(status(s), why),
        _ => failed(2, format!("run {} ended before it answered", rec.id)),
    }
}
