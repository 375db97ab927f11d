//! `runner capture`: the frames of one interface, from a packet socket the run opened in its
//! namespace, as a pcap stream (libpcap's format, Ethernet link type, written by the
//! `pcap-file` crate) that Wireshark (`-k -i -`) and tcpdump (`-r -`) read as it comes. Each
//! frame is written whole and flushed before the next is read, so however the capture ends
//! (COUNT frames, Ctrl-C, the run's end, a reader that went away) the stream ends between two
//! records, never inside one.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapPacket, PcapWriter};

/// The most of a frame kept: every frame of the lab's links, whatever their MTU.
const SNAPLEN: usize = 65535;

/// What the pcap writer has made of a frame and not passed on yet: a record is passed on in
/// one write, whole.
#[derive(Clone, Default)]
struct Pending(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Pending {
    /// Write what is pending to `out`: false if the reader has gone.
    fn pass_on(&self, out: &mut Box<dyn Write>) -> bool {
        let bytes = std::mem::take(&mut *self.0.borrow_mut());
        out.write_all(&bytes).and_then(|()| out.flush()).is_ok()
    }
}

/// How a capture ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// COUNT frames were written.
    Counted,
    /// Ctrl-C or SIGTERM.
    Signal,
    /// The run ended (or, for a kept run, the interface went away).
    RunEnded,
    /// Whoever reads the stream went away.
    ReaderGone,
}

/// Where the stream goes: stdout, or `-w FILE` (made anew, or a FIFO or device written
/// through; a symbolic link there is refused, not followed).
pub fn sink(file: Option<&Path>) -> std::io::Result<Box<dyn Write>> {
    let Some(path) = file else {
        return Ok(Box::new(std::io::stdout()));
    };
    use std::os::unix::fs::OpenOptionsExt;
    let existing = std::fs::symlink_metadata(path).ok();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).custom_flags(libc::O_NOFOLLOW);
    match existing {
        Some(m) if m.file_type().is_symlink() => {
            return Err(std::io::Error::other(format!(
                "{} is a symbolic link: name the file itself",
                path.display()
            )))
        }
        Some(m) if !m.is_file() => {}
        _ => {
            options.create(true).truncate(true).mode(0o644);
        }
    }
    Ok(Box::new(options.open(path)?))
}

/// Write what `socket` receives to `out` until `count` frames, a signal (`signals` readable),
/// or the end of the run (`run_end` readable, or the interface gone when `down_ends`).
pub fn stream(
    socket: &OwnedFd,
    out: Box<dyn Write>,
    count: Option<u64>,
    signals: RawFd,
    run_end: Option<RawFd>,
    down_ends: bool,
) -> std::io::Result<(u64, Ended)> {
    let mut out = out;
    let pending = Pending::default();
    let mut writer = match PcapWriter::new(pending.clone()) {
        Ok(w) => w,
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    if !pending.pass_on(&mut out) {
        return Ok((0, Ended::ReaderGone));
    }
    let mut written = 0u64;
    let mut frame = vec![0u8; SNAPLEN];
    loop {
        if count.is_some_and(|c| written >= c) {
            return Ok((written, Ended::Counted));
        }
        let polls = match super::ready(&[socket.as_raw_fd(), signals, run_end.unwrap_or(-1)], -1) {
            Ok(polls) => polls,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if polls[1] {
            return Ok((written, Ended::Signal));
        }
        if polls[0] {
            // TRUNC: the frame's length on the wire, even where it is longer than kept.
            use rustix::io::Errno;
            use rustix::net::RecvFlags;
            let wire = match rustix::net::recv(
                socket,
                &mut frame[..],
                RecvFlags::TRUNC | RecvFlags::DONTWAIT,
            ) {
                Ok((_, wire)) => wire,
                Err(Errno::AGAIN | Errno::INTR) => continue,
                // The interface went down (a link set down) or away (its namespace).
                Err(Errno::NETDOWN | Errno::NXIO) if !down_ends => continue,
                Err(Errno::NETDOWN | Errno::NXIO) => return Ok((written, Ended::RunEnded)),
                Err(e) => return Err(e.into()),
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let packet = PcapPacket::new(now, wire as u32, &frame[..wire.min(SNAPLEN)]);
            if writer.write_packet(&packet).is_err() || !pending.pass_on(&mut out) {
                return Ok((written, Ended::ReaderGone));
            }
            written += 1;
            continue;
        }
        if polls[2] {
            return Ok((written, Ended::RunEnded));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    /// A datagram socket pair stands for the packet socket: each datagram a frame.
    fn frames(n: usize) -> (OwnedFd, OwnedFd) {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        for i in 0..n {
            let frame = vec![i as u8; 60 + i];
            nix::unistd::write(&theirs, &frame).unwrap();
        }
        (ours, theirs)
    }

    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn count_frames_are_written_as_whole_pcap_records() {
        let (socket, _theirs) = frames(3);
        let (_sig_read, sig_write) = nix::unistd::pipe().unwrap();
        let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let (n, ended) = stream(
            &socket,
            Box::new(Shared(out.clone())),
            Some(2),
            sig_write.as_raw_fd(),
            None,
            false,
        )
        .unwrap();
        assert_eq!((n, ended), (2, Ended::Counted));
        let bytes = out.borrow().clone();
        let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header().datalink, pcap_file::DataLink::ETHERNET);
        let first = reader.next_packet().unwrap().unwrap();
        assert_eq!((first.data.len(), first.orig_len), (60, 60));
        let second = reader.next_packet().unwrap().unwrap();
        assert_eq!(second.data[0], 1);
        assert!(
            reader.next_packet().is_none(),
            "nothing after the last record"
        );
    }

    #[test]
    fn a_signal_or_the_runs_end_stops_the_stream_between_records() {
        let (socket, _theirs) = frames(0);
        let (sig_read, sig_write) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&sig_write, &[libc::SIGINT as u8]).unwrap();
        let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let (n, ended) = stream(
            &socket,
            Box::new(Shared(out.clone())),
            None,
            sig_read.as_raw_fd(),
            None,
            false,
        )
        .unwrap();
        assert_eq!((n, ended), (0, Ended::Signal));
        assert_eq!(out.borrow().len(), 24, "the header alone");
        // The run's end: its connection closes.
        let (quiet, _q) = nix::unistd::pipe().unwrap();
        let (run_read, run_write) = nix::unistd::pipe().unwrap();
        drop(run_write);
        let (_, ended) = stream(
            &socket,
            Box::new(Shared(out)),
            None,
            quiet.as_raw_fd(),
            Some(run_read.as_raw_fd()),
            false,
        )
        .unwrap();
        assert_eq!(ended, Ended::RunEnded);
    }

    #[test]
    fn a_reader_that_went_away_ends_the_capture_quietly() {
        let (socket, _theirs) = frames(1);
        let (_sig_read, sig_write) = nix::unistd::pipe().unwrap();
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let (_, ended) = stream(
            &socket,
            Box::new(std::fs::File::from(write)),
            None,
            sig_write.as_raw_fd(),
            None,
            false,
        )
        .unwrap();
        assert_eq!(ended, Ended::ReaderGone);
    }
}
