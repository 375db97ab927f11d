//! Namespaces: names, the principal, the record, deleting.

use super::*;
use crate::error::ErrorKind;

use nix::errno::Errno;

#[tokio::test]
async fn a_namespace_is_made_narrated_and_counted() {
    let mut t = lab();
    let a = t.ns("a");
    assert_eq!(t.lab.namespace_count(), 1);
    assert_eq!(t.lab.namespace_name(a).unwrap(), "a");
    assert_eq!(t.fake.namespaces(), ["a"]);
    assert!(t.said("netns add a"));
    assert!(t.said("size 1 0"));
}

#[tokio::test]
async fn a_second_namespace_of_the_same_name_is_refused_before_the_kernel_is_asked() {
    let mut t = lab();
    t.ns("a");
    is(
        t.lab.create_namespace(&name("a")).await,
        |e| e.kind() == ErrorKind::Exists,
        "namespace a already exists in this run",
    );
    assert_eq!(t.fake.logged("netns add").len(), 1);
}

#[tokio::test]
async fn the_principal_starts_once_and_the_record_holds_its_ids() {
    let mut t = lab();
    t.ns("a");
    t.ns("b");
    assert_eq!(t.fake.logged("start").len(), 1);
    assert_eq!(t.lab.record.host_ids, vec![(1_879_048_192, 65536)]);
    assert!(t.lab.record.userns.is_some());
    let principals = t
        .sink
        .lines()
        .iter()
        .filter(|l| l.starts_with("Principal"))
        .count();
    assert_eq!(principals, 1);
}

#[tokio::test]
async fn prepare_starts_the_principal_before_any_namespace() {
    let mut t = lab_as(Mode::Rootless {
        uid: 1000,
        gid: 1000,
    });
    t.lab.prepare().unwrap();
    assert_eq!(t.fake.log(), ["start"]);
    t.ns("a");
    assert_eq!(t.fake.logged("start").len(), 1);
}

#[tokio::test]
async fn a_namespace_the_kernel_refuses_leaves_no_entry_and_no_record() {
    let mut t = lab();
    t.fake.fail_next("netns add", Errno::ENOSPC);
    is(
        t.lab.create_namespace(&name("a")).await,
        |e| e.kind() == ErrorKind::Limit,
        "create namespace a",
    );
    assert_eq!(t.lab.namespace_count(), 0);
    assert!(!t.lab.record.log_path().exists());
    // The next one works, and is the only one on record.
    t.ns("a");
    assert_eq!(t.logged_namespaces(), ["a"]);
}

#[tokio::test]
async fn the_record_logs_each_namespace_made_and_deleted() {
    let mut t = lab();
    let a = t.ns("a");
    t.ns("b");
    assert_eq!(t.logged_namespaces(), ["a", "b"]);
    t.lab.delete_namespace(a).await.unwrap();
    assert_eq!(t.logged_namespaces(), ["b"]);
    let saved = RunRecord::load_from(&t.lab.record.dir.join(format!("{}.json", t.lab.run_id())));
    assert!(saved.is_ok(), "the record is saved at the first namespace");
}

#[tokio::test]
async fn a_record_that_cannot_be_written_is_said_once_and_does_not_stop_the_lab() {
    let id = persist::record::new_run_id().unwrap();
    // A directory below a file: nothing can be made there.
    let record = RunRecord::new(id, "t.wasm".into(), PathBuf::from("/dev/null/runs"));
    let mut t = lab_with(
        Mode::Root,
        record,
        Scratch(PathBuf::from("/nonexistent-nslab")),
    );
    t.ns("a");
    t.ns("b");
    let warnings: Vec<String> = t
        .sink
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("`runner ls` will not show run"));
    assert_eq!(t.lab.namespace_count(), 2);
}

#[tokio::test]
async fn deleting_a_namespace_twice_says_it_is_gone() {
    let mut t = lab();
    let a = t.ns("a");
    t.lab.delete_namespace(a).await.unwrap();
    is(
        t.lab.delete_namespace(a).await,
        |e| e.kind() == ErrorKind::NotFound,
        "already deleted",
    );
    is(
        t.lab.namespace_name(a).map(str::to_string),
        |e| e.kind() == ErrorKind::NotFound,
        "deleted",
    );
}

#[tokio::test]
async fn deleting_a_namespace_retires_its_peers_elsewhere_then_closes_it() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    let (inner, _) = t.veth("p", a, "q", a).await;
    let _ = inner;
    t.lab.delete_namespace(a).await.unwrap();
    let log = t.fake.log();
    // The peer in b is set aside at once (down, renamed); nothing in a is touched one by one:
    // the kernel frees a with its links.
    let retired = log
        .iter()
        .position(|l| l.starts_with("retire ") && l.contains("(b) as ~1"));
    let closed = log.iter().position(|l| l == "close a").unwrap();
    assert!(retired.is_some_and(|r| r < closed), "{log:?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("retire ")).count(),
        1,
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.starts_with("delete links")),
        "{log:?}"
    );
    // The veth's other end went with it, in the kernel; a pair with both ends in a is counted
    // once per end, not twice.
    assert_eq!(t.fake.links_of("b"), ["lo"]);
    assert_eq!(t.lab.links_held(), 0);
}

#[tokio::test]
async fn a_retired_peer_frees_its_name_and_is_never_listed() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    // The kernel has not freed a yet: its peer lingers in b, retired.
    t.fake.free_lazily();
    t.lab.delete_namespace(a).await.unwrap();
    assert_eq!(t.fake.links_of("b"), ["lo", "~1@a/x"]);
    let listed: Vec<String> = t
        .lab
        .links_in(b)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(listed, ["lo"]);
    // y is free again at once: a new pair may take the name.
    let c = t.ns("c");
    t.veth("x", c, "y", b).await;
    assert_eq!(t.lab.links_held(), 2);
    t.fake.free_closed();
    assert_eq!(t.fake.links_of("b"), ["lo", "y@c/x"]);
}

#[tokio::test]
async fn links_held_count_what_exists_so_churn_never_reaches_the_limit() {
    let mut t = lab();
    let keep = t.ns("keep");
    // limits() allows 100 links: 300 rounds make 600.
    for _ in 0..300 {
        let c = t.ns("c");
        t.veth("v", c, "w", keep).await;
        t.lab.bridge(&name("br"), c).await.unwrap();
        assert_eq!(t.lab.links_held(), 3);
        t.lab.delete_namespace(c).await.unwrap();
        assert_eq!(t.lab.links_held(), 0);
    }
    assert!(t.said("size 1 0"));
}

#[tokio::test]
async fn a_deleted_namespace_takes_its_veth_peers_out_of_the_picture() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (_, y) = t.veth("x", a, "y", b).await;
    t.lab.delete_namespace(a).await.unwrap();
    // The kernel removed y with x: the lab must not draw it or hand it out.
    assert!(t.node("b", "y").is_none());
    is(
        t.lab.link_name(y).map(str::to_string),
        |e| e.kind() == ErrorKind::NotFound,
        "gone",
    );
}

#[tokio::test]
async fn a_link_of_a_deleted_namespace_is_gone_for_every_call() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    t.lab.delete_namespace(a).await.unwrap();
    is(
        t.lab.set_up(x, true).await,
        |e| e.kind() == ErrorKind::NotFound,
        "its namespace was deleted",
    );
    is(
        t.lab.add_address(x, cidr("10.0.0.1/24")).await,
        |e| e.kind() == ErrorKind::NotFound,
        "gone",
    );
}

#[tokio::test]
async fn problems_retiring_peers_are_reported_but_the_namespace_is_gone() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    t.fake.fail_next("retire", Errno::EBUSY);
    is(
        t.lab.delete_namespace(a).await,
        |e| e.kind() == ErrorKind::Os,
        "namespace a is deleted, but setting its links' peers aside failed",
    );
    assert_eq!(t.lab.namespace_count(), 1);
    assert_eq!(t.fake.namespaces(), ["b"]);
    assert_eq!(t.logged_namespaces(), ["b"]);
}
