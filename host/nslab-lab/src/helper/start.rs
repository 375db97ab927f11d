//! A program's start as the helper's protocol carries it (protocol.rs): the descriptors a
//! [`Request::Spawn`](super::protocol::Request::Spawn) passes, and the code its start-error
//! pipe says why it did not start with.

use nix::errno::Errno;

/// The descriptors a [`Request::Spawn`](super::protocol::Request::Spawn) passes, the most any message does: the command's
/// memfd, then a [`StartFds`].
pub const SPAWN_FDS: usize = 1 + START_FDS;
const START_FDS: usize = 9;

/// The descriptors of a program's start, in the order a [`Request::Spawn`](super::protocol::Request::Spawn) passes them after
/// the command's memfd. Both sides use it: the runner with the raw fds it lends for the
/// message, the helper with the ones it received.
#[derive(Debug)]
pub struct StartFds<F> {
    /// The namespace the program runs in, its box's mount namespace, and its UTS namespace.
    pub netns: F,
    pub mntns: F,
    pub utsns: F,
    pub stdin: F,
    pub stdout: F,
    pub stderr: F,
    /// The write end of the pipe its init writes its exit status to.
    pub exit_status: F,
    /// The write end of the pipe that says why it could not start (a [`StartError`]).
    pub errors: F,
    /// The write end of the pipe its init writes the program's pid to once it is forked.
    pub forked: F,
}

impl<F> StartFds<F> {
    /// In the message's order.
    pub fn into_array(self) -> [F; START_FDS] {
        let StartFds {
            netns,
            mntns,
            utsns,
            stdin,
            stdout,
            stderr,
            exit_status,
            errors,
            forked,
        } = self;
        [
            netns,
            mntns,
            utsns,
            stdin,
            stdout,
            stderr,
            exit_status,
            errors,
            forked,
        ]
    }

    /// From the message's order.
    pub fn from_array(fds: [F; START_FDS]) -> StartFds<F> {
        let [netns, mntns, utsns, stdin, stdout, stderr, exit_status, errors, forked] = fds;
        StartFds {
            netns,
            mntns,
            utsns,
            stdin,
            stdout,
            stderr,
            exit_status,
            errors,
            forked,
        }
    }
}

/// Why a program did not start, as 4 bytes (native order) on its start-error pipe: the
/// errno its exec failed with (positive); its init's own, negated, when the init could not
/// enter the lab; or the helper's, negated and below [`CLONE_FAILED`], when it could not clone
/// the init at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    Exec(Errno),
    Init(Errno),
    Clone(Errno),
}

/// Where the helper's codes begin (below any errno, negated).
const CLONE_FAILED: i32 = -0x10000;

impl StartError {
    pub fn encode(self) -> i32 {
        match self {
            StartError::Exec(e) => e as i32,
            StartError::Init(e) => -(e as i32),
            StartError::Clone(e) => CLONE_FAILED - e as i32,
        }
    }

    pub fn decode(code: i32) -> StartError {
        match code {
            c if c <= CLONE_FAILED => StartError::Clone(Errno::from_raw(CLONE_FAILED - c)),
            c if c < 0 => StartError::Init(Errno::from_raw(-c)),
            c => StartError::Exec(Errno::from_raw(c)),
        }
    }
}
