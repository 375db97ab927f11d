//! How a lab ends: teardown and its order, a drop, keeping and its rollback.

use super::*;
use crate::error::ErrorKind;

use crate::persist::record::NsChange;
use nix::errno::Errno;

#[tokio::test]
async fn teardown_closes_the_namespaces_newest_first_and_removes_the_record() {
    let mut t = lab();
    for n in ["a", "b", "c"] {
        t.ns(n);
    }
    let report = t.lab.teardown().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(t.fake.logged("close"), ["close c", "close b", "close a"]);
    assert_eq!(report.removed.len(), 3);
    assert!(report.removed[0].starts_with("netns c (net:["));
    assert!(t.fake.namespaces().is_empty());
    assert!(!t.lab.record.log_path().exists());
    assert!(!t
        .lab
        .record
        .dir
        .join(format!("{}.json", t.lab.run_id()))
        .exists());
}

#[tokio::test]
async fn teardown_asks_the_kernel_nothing_unless_detail_was_asked_for() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    let before = t.lab.kernel_requests();
    t.lab.teardown().await;
    assert_eq!(t.lab.kernel_requests(), before);
}

/// A sink that asks for detail (`-v`).
#[derive(Default)]
struct Verbose(Recorded);

impl Sink for Verbose {
    fn event(&self, e: LabEvent<'_>) {
        self.0.event(e)
    }
    fn detailed(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_detailed_teardown_lists_what_each_namespace_held() {
    let id = persist::record::new_run_id().unwrap();
    let dir = std::env::temp_dir().join(format!("nslab-lab-test-{id}"));
    let _scratch = Scratch(dir.clone());
    let fake = Fake::new();
    let mut lab = Lab::new(
        fake.clone(),
        LabConfig {
            mode: Mode::Root,
            limits: limits(),
            record: RunRecord::new(id, "t.wasm".into(), dir),
            sink: Arc::new(Verbose::default()),
        },
    );
    let a = lab.create_namespace(&name("a")).await.unwrap();
    let b = lab.create_namespace(&name("b")).await.unwrap();
    lab.veth(&name("x"), a, &name("y"), b).await.unwrap();
    let report = lab.teardown().await;
    assert!(
        report
            .removed
            .iter()
            .any(|r| r.ends_with("with links: lo, y")),
        "{:?}",
        report.removed
    );
    // b was closed first: a's x went with y, as the kernel removes a pair.
    assert!(report.removed.iter().any(|r| r.ends_with("with links: lo")));
}

#[tokio::test]
async fn a_lab_dropped_without_teardown_still_lets_go_of_every_namespace() {
    let mut t = lab();
    t.ns("a");
    t.ns("b");
    let fake = t.fake.clone();
    drop(t);
    assert!(fake.namespaces().is_empty());
}

#[tokio::test]
async fn the_kernel_requests_are_counted() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let before = t.lab.kernel_requests();
    t.veth("x", a, "y", b).await;
    assert_eq!(t.lab.kernel_requests(), before + 1);
}

// ---- keeping ----

#[tokio::test]
async fn root_keeps_a_lab_by_pinning_each_namespace_and_recording_the_pins() {
    let mut t = lab();
    t.ns("a");
    t.ns("b");
    t.fake.give_box("b");
    let id = t.lab.run_id().to_string();
    let kept = t.lab.keep().unwrap();
    assert_eq!(kept.holder, Holder::Pins);
    let pinned: Vec<_> = kept
        .namespaces
        .iter()
        .map(|n| n.pinned.clone().unwrap())
        .collect();
    assert_eq!(pinned, [format!("nslab-{id}-a"), format!("nslab-{id}-b")]);
    assert!(kept.namespaces[1].files.is_some() && kept.namespaces[0].files.is_none());
    assert_eq!(t.fake.pins().len(), 3);
    assert_eq!(t.lab.namespace_count(), 0, "the lab let go of what is kept");
    let saved = RunRecord::load_from(&t.lab.record.dir.join(format!("{id}.json"))).unwrap();
    assert!(saved.kept);
    assert_eq!(saved.namespaces, kept.namespaces);
}

#[tokio::test]
async fn each_pin_is_logged_as_it_is_made_and_a_record_read_midway_finds_them() {
    let mut t = lab();
    t.ns("a");
    t.ns("b");
    t.ns("c");
    t.fake.give_box("a");
    let id = t.lab.run_id().to_string();
    // The third pin fails: what a runner killed there would leave is what the log says.
    t.fake
        .fail_next(&format!("pin nslab-{id}-c"), Errno::EEXIST);
    let log = t.lab.record.dir.join(format!("{id}.log"));
    let before = std::fs::read_to_string(&log).unwrap();
    assert!(t.lab.keep().is_err());
    let after = std::fs::read_to_string(&log).unwrap();
    let pinned: Vec<&str> = after[before.len()..].lines().collect();
    assert_eq!(
        pinned.len(),
        2,
        "one line a pin, nothing rewritten: {after}"
    );
    let replayed = RunRecord::replay_log(&log);
    assert_eq!(replayed[0].pinned, Some(format!("nslab-{id}-a")));
    assert_eq!(
        replayed[0].files.as_ref().map(|f| f.0.clone()),
        Some(format!("nslab-{id}-a"))
    );
    assert_eq!(replayed[1].pinned, Some(format!("nslab-{id}-b")));
    assert_eq!(replayed[2].pinned, None);
    t.lab.teardown().await;
}

#[tokio::test]
async fn a_failed_pin_undoes_every_pin_before_it_and_the_lab_stays() {
    let mut t = lab();
    t.ns("a");
    t.ns("b");
    t.ns("c");
    let id = t.lab.run_id().to_string();
    t.fake
        .fail_next(&format!("pin nslab-{id}-b"), Errno::EEXIST);
    assert!(t.lab.keep().is_err());
    assert!(t.fake.pins().is_empty(), "{:?}", t.fake.pins());
    assert_eq!(t.fake.logged("unpin"), [format!("unpin nslab-{id}-a")]);
    assert_eq!(
        t.lab.namespace_count(),
        3,
        "the caller tears it down as usual"
    );
    assert!(!t.lab.record.kept);
    assert!(t.lab.record.namespaces.iter().all(|n| n.pinned.is_none()));
    let report = t.lab.teardown().await;
    assert!(report.problems.is_empty());
    assert!(t.fake.namespaces().is_empty());
}

#[tokio::test]
async fn a_failed_pin_of_files_undoes_the_namespaces_pins_too() {
    let mut t = lab();
    t.ns("a");
    t.ns("b");
    t.fake.give_box("a");
    t.fake.give_box("b");
    let id = t.lab.run_id().to_string();
    t.fake
        .fail_next(&format!("pin files nslab-{id}-b"), Errno::ENOSPC);
    assert!(t.lab.keep().is_err());
    assert!(t.fake.pins().is_empty(), "{:?}", t.fake.pins());
    assert_eq!(t.lab.namespace_count(), 2);
}

#[tokio::test]
async fn an_ordinary_user_keeps_a_lab_with_a_keeper_and_the_record_leads_to_it() {
    let mut t = lab_as(Mode::Rootless {
        uid: 1000,
        gid: 1000,
    });
    t.ns("a");
    t.ns("b");
    t.fake.give_box("a");
    let kept = t.lab.keep().unwrap();
    let Holder::Keeper(pid) = kept.holder else {
        panic!("{:?}", kept.holder)
    };
    assert!(t.fake.pins().is_empty(), "nothing under /run/netns");
    assert_eq!(t.lab.record.keeper.map(|k| k.0), Some(pid));
    for n in &kept.namespaces {
        assert!(n
            .pinned
            .as_deref()
            .unwrap()
            .starts_with(&format!("/proc/{pid}/fd/")));
    }
    assert!(kept.namespaces[0].files.is_some());
}

#[tokio::test]
async fn a_keeper_whose_record_cannot_be_written_is_stopped() {
    let id = persist::record::new_run_id().unwrap();
    let record = RunRecord::new(id, "t.wasm".into(), PathBuf::from("/dev/null/runs"));
    let mut t = lab_with(
        Mode::Rootless {
            uid: 1000,
            gid: 1000,
        },
        record,
        Scratch(PathBuf::from("/nonexistent-nslab")),
    );
    t.ns("a");
    is(
        t.lab.keep(),
        |e| e.kind() == ErrorKind::Os,
        "only it would lead `runner cleanup` to the kept lab",
    );
    assert_eq!(t.fake.logged("stop keeper").len(), 1);
    assert_eq!(t.lab.record.keeper, None);
    assert_eq!(t.lab.namespace_count(), 1);
}

#[tokio::test]
async fn a_keeper_that_cannot_start_leaves_the_lab_to_be_torn_down() {
    let mut t = lab_as(Mode::Rootless {
        uid: 1000,
        gid: 1000,
    });
    t.ns("a");
    t.fake.fail_next("keeper", Errno::EAGAIN);
    assert!(t.lab.keep().is_err());
    assert!(!t.lab.record.kept);
    assert_eq!(t.lab.namespace_count(), 1);
}

#[test]
fn a_namespace_change_is_one_line_of_the_log() {
    let made = serde_json::to_string(&NsChange::Made {
        name: "a".into(),
        inode: 7,
    })
    .unwrap();
    assert_eq!(made, r#"{"made":{"name":"a","inode":7}}"#);
}
