//! What the operator's side and the run's control socket say: one JSON message per datagram
//! of a SOCK_SEQPACKET socket, with the descriptors it passes (the operator's stdin, stdout
//! and stderr; a packet socket) travelling with it, as the lab helper's protocol passes them.

use std::os::fd::{OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

/// The largest message either side sends.
const MAX: usize = 64 << 10;

/// What the operator asks.
#[derive(Debug, Serialize, Deserialize)]
pub enum Ask {
    /// Run `argv` in namespace `ns` (fds: stdin, stdout, stderr). With `terminal`, the three
    /// are one terminal, which the program takes as its controlling one.
    Exec {
        ns: String,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        terminal: bool,
    },
    /// Pass on a signal to the program started by this connection.
    Signal(i32),
    /// A packet socket on interface `iface` of namespace `ns`.
    Capture { ns: String, iface: String },
    /// End the hold.
    Release,
}

/// What the run answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// The program runs.
    Started,
    /// The program ended with this status (128 + signal when killed).
    Exited(i32),
    /// Nothing was started: why, and the status to exit with.
    Refused { status: i32, why: String },
    /// Here is the packet socket (fd).
    Socket,
    /// The hold ends now.
    Released,
}

pub fn send<T: Serialize>(socket: RawFd, message: &T, fds: &[RawFd]) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(message)?;
    nslab_lab::operator::send(socket, &bytes, fds).map_err(std::io::Error::from)
}

/// The next message and its descriptors; None at the end of the stream or for a message that
/// does not parse.
pub fn receive<T: for<'a> Deserialize<'a>>(
    socket: RawFd,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX];
    let (n, fds) = nslab_lab::operator::receive(socket, &mut buf).map_err(std::io::Error::from)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(serde_json::from_slice(&buf[..n]).ok().map(|m| (m, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_request_travels_whole_with_its_descriptors() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let ask = Ask::Exec {
            ns: "r1".into(),
            argv: vec!["vtysh".into(), "-c".into(), "show ip ospf neighbor".into()],
            env: vec![("TERM".into(), "xterm".into())],
            terminal: true,
        };
        send(
            a.as_raw_fd(),
            &ask,
            &[r.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()],
        )
        .unwrap();
        let (got, fds) = receive::<Ask>(b.as_raw_fd()).unwrap().unwrap();
        assert_eq!(fds.len(), 3);
        match got {
            Ask::Exec {
                ns, argv, terminal, ..
            } => {
                assert_eq!(ns, "r1");
                assert_eq!(argv[2], "show ip ospf neighbor");
                assert!(terminal);
            }
            other => panic!("{other:?}"),
        }
        // What is not a message of this protocol is none, never a panic; the end is None.
        nslab_lab::operator::send(a.as_raw_fd(), b"{not json", &[]).unwrap();
        assert!(receive::<Ask>(b.as_raw_fd()).unwrap().is_none());
        drop(a);
        assert!(receive::<Answer>(b.as_raw_fd()).unwrap().is_none());
    }
}
