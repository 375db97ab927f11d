//! The lab's logic on the fake kernel (kernel/fake.rs): names, peers, moves, deletes, teardown
//! and its order, keeping and its rollback, the run's record, what the lab tells its sink. No
//! root and no namespace: these run as any user, in parallel.

use std::path::PathBuf;
use std::sync::Arc;

mod ends;
mod links;
mod namespaces;
mod programs;
mod routes;

use super::events::Recorded;
use super::kernel::fake::Fake;
use super::persist::record::RunRecord;
use super::*;
use crate::input::{Cidr, RouteSpec};

/// A scratch directory for the run's record, removed when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lab on the fake kernel, with its sink and the fake's view. The lab is dropped first.
struct Test {
    lab: Lab<Fake>,
    fake: Fake,
    sink: Arc<Recorded>,
    _scratch: Scratch,
}

fn lab_as(mode: Mode) -> Test {
    let id = persist::record::new_run_id().unwrap();
    let dir = std::env::temp_dir().join(format!("nslab-lab-test-{id}"));
    let record = RunRecord::new(id, "test.wasm".into(), dir.clone());
    lab_with(mode, record, Scratch(dir))
}

fn lab_with(mode: Mode, record: RunRecord, scratch: Scratch) -> Test {
    let fake = Fake::new();
    let sink = Arc::new(Recorded::default());
    let config = LabConfig {
        mode,
        limits: limits(),
        record,
        sink: sink.clone(),
    };
    Test {
        lab: Lab::new(fake.clone(), config),
        fake,
        sink,
        _scratch: scratch,
    }
}

fn limits() -> ProgramLimits {
    ProgramLimits {
        max_processes: 8,
        max_links: 100,
        program_memory: 1 << 30,
        scratch_bytes: 1 << 20,
        tripped: Arc::default(),
        by_path: Vec::new(),
    }
}

fn lab() -> Test {
    lab_as(Mode::Root)
}

fn name(s: &str) -> Name {
    Name::parse("namespace", s).unwrap()
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn route(dest: &str, gw: Option<&str>, dev: Option<&str>) -> RouteSpec {
    RouteSpec::parse(dest, gw, dev).unwrap()
}

impl Test {
    /// A namespace made on the fake, which answers at once: no runtime needed to wait.
    fn ns(&mut self, n: &str) -> NsId {
        futures::executor::block_on(self.lab.create_namespace(&name(n))).unwrap()
    }

    async fn veth(&mut self, a: &str, an: NsId, b: &str, bn: NsId) -> (LinkId, LinkId) {
        self.lab.veth(&name(a), an, &name(b), bn).await.unwrap()
    }

    /// The link `link` of the lab's picture, in namespace `ns`.
    fn node(&self, ns: &str, link: &str) -> Option<LinkNode> {
        self.lab
            .topology()
            .links
            .into_iter()
            .find(|l| l.ns == ns && l.name == link)
    }

    /// What the record's log says the run has.
    fn logged_namespaces(&self) -> Vec<String> {
        RunRecord::replay_log(&self.lab.record.log_path())
            .into_iter()
            .map(|n| n.name)
            .collect()
    }

    fn said(&self, text: &str) -> bool {
        self.sink.lines().iter().any(|l| l.contains(text))
    }
}

fn is<T>(r: LabResult<T>, kind: fn(&LabError) -> bool, text: &str) {
    match r {
        Ok(_) => panic!("expected an error containing {text:?}"),
        Err(e) => {
            assert!(kind(&e), "wrong kind: {e:?}");
            assert!(e.to_string().contains(text), "{e} lacks {text:?}");
        }
    }
}
