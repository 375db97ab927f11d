//! The lab's doors: what the operator steps into a run by (`runner exec`, `runner shell`,
//! `runner capture`, served by the runner's control socket, host/src/enter/), while the lab
//! itself may be busy with the scenario. A namespace's door opens when its box is made for
//! its first program (programs/mod.rs), or when the operator asks for it while the run holds
//! ([`Lab::open_door`]); it shuts when the namespace is deleted, and every door shuts before
//! the lab is kept or torn down, so that nothing the doors hold keeps a namespace or the
//! helper alive past the run.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::helper::starter::Starter;
use super::Lab;
use crate::error::{LabError, LabResult};

/// Where an operator's program runs: as [`super::Boxing`], but held, so that a namespace
/// deleted meanwhile cannot leave a start with a closed or reused fd.
pub struct Room {
    pub netns: OwnedFd,
    pub mntns: OwnedFd,
    pub utsns: OwnedFd,
}

impl Room {
    pub fn boxing(&self) -> super::Boxing {
        super::Boxing {
            netns: self.netns.as_raw_fd(),
            mntns: self.mntns.as_raw_fd(),
            utsns: self.utsns.as_raw_fd(),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Every namespace of the lab now, by name, open or not.
    names: BTreeSet<String>,
    rooms: BTreeMap<String, Arc<Room>>,
    starter: Option<Starter>,
    closed: bool,
}

/// The doors of one lab, shared with whoever serves the operator.
#[derive(Default)]
pub struct Doors(Mutex<Inner>);

/// What a door gave: where to start a program, and what starts it.
pub struct Entry {
    pub room: Arc<Room>,
    pub starter: Starter,
}

/// Why no door gave way.
#[derive(Debug, PartialEq, Eq)]
pub enum Shut {
    /// The lab has no namespace of that name (the names it has).
    NoSuchNamespace(Vec<String>),
    /// The namespace has run no program yet, and the lab is busy with the scenario.
    NotOpenYet,
    /// The lab is being kept or torn down.
    Closed,
}

impl Doors {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The namespaces of the lab now.
    pub fn names(&self) -> Vec<String> {
        self.lock().names.iter().cloned().collect()
    }

    /// The door of namespace `name`.
    pub fn enter(&self, name: &str) -> Result<Entry, Shut> {
        let inner = self.lock();
        if inner.closed {
            return Err(Shut::Closed);
        }
        if !inner.names.contains(name) {
            return Err(Shut::NoSuchNamespace(inner.names.iter().cloned().collect()));
        }
        match (inner.rooms.get(name), &inner.starter) {
            (Some(room), Some(starter)) => Ok(Entry {
                room: room.clone(),
                starter: starter.clone(),
            }),
            _ => Err(Shut::NotOpenYet),
        }
    }

    pub(super) fn made(&self, name: &str) {
        self.lock().names.insert(name.to_string());
    }

    pub(super) fn deleted(&self, name: &str) {
        let mut inner = self.lock();
        inner.names.remove(name);
        inner.rooms.remove(name);
    }

    fn open(&self, name: &str, room: Room, starter: Starter) {
        let mut inner = self.lock();
        if !inner.closed {
            inner.rooms.insert(name.to_string(), Arc::new(room));
            inner.starter.get_or_insert(starter);
        }
    }

    /// Shut every door for good: the lab is about to be kept or torn down.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.rooms.clear();
        inner.starter = None;
    }
}

fn held(fd: BorrowedFd<'_>) -> LabResult<OwnedFd> {
    fd.try_clone_to_owned()
        .map_err(|e| LabError::from_io(&e, "keep a door of the lab open"))
}

impl<K: crate::kernel::Kernel> Lab<K> {
    /// The lab's doors, for whoever serves the operator.
    pub fn doors(&self) -> Arc<Doors> {
        self.doors.clone()
    }

    /// Open the door of namespace `name` now: its box, and what confines programs there, made
    /// if they are not yet (as for a first program).
    pub async fn open_door(&mut self, name: &str) -> LabResult<()> {
        let id = self
            .namespaces
            .iter()
            .find(|(_, n)| n.name == name)
            .map(|(id, _)| *id)
            .ok_or_else(|| LabError::not_found(format!("no namespace {name} in this run")))?;
        self.boxing(id).await.map(|_| ())
    }

    /// Called once a namespace's box is ready for its first program: its door opens.
    pub(super) fn door_opens(&self, name: &str, boxing: super::Boxing) -> LabResult<()> {
        // SAFETY: the lab holds these fds open for as long as the namespace lives, and this
        // borrow ends before this function returns.
        let borrow = |fd| unsafe { BorrowedFd::borrow_raw(fd) };
        let room = Room {
            netns: held(borrow(boxing.netns))?,
            mntns: held(borrow(boxing.mntns))?,
            utsns: held(borrow(boxing.utsns))?,
        };
        use crate::helper::port::Port;
        // A port that starts no operator's programs (the fake) opens no door.
        if let Some(starter) = self.kernel.port()?.starter() {
            self.doors.open(name, room, starter);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_door_says_why_it_does_not_open() {
        let doors = Doors::default();
        doors.made("r1");
        doors.made("r2");
        assert_eq!(
            doors.enter("r9").err(),
            Some(Shut::NoSuchNamespace(vec!["r1".into(), "r2".into()]))
        );
        // Made, but no program has run there: no box, no door yet.
        assert_eq!(doors.enter("r1").err(), Some(Shut::NotOpenYet));
        doors.deleted("r2");
        assert_eq!(doors.names(), vec!["r1".to_string()]);
        doors.close();
        assert_eq!(doors.enter("r1").err(), Some(Shut::Closed));
    }
}
