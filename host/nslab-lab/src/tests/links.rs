//! Links: veth pairs and their peers, bridges, names, moves, addresses, settings, shaping.

use super::*;
use crate::error::ErrorKind;

use crate::input::Mac;
use crate::kernel::shaping::MAX_RATE_BPS;
use nix::errno::Errno;

#[tokio::test]
async fn both_ends_of_a_veth_with_one_name_in_one_namespace_are_refused_before_the_kernel() {
    let mut t = lab();
    let a = t.ns("a");
    is(
        t.lab.veth(&name("x"), a, &name("x"), a).await,
        |e| e.kind() == ErrorKind::Invalid,
        "both ends of a veth pair are called x",
    );
    assert!(t.fake.logged("veth").is_empty());
}

#[tokio::test]
async fn a_veth_may_have_one_name_at_both_ends_in_two_namespaces() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("eth0", a, "eth0", b).await;
    assert_eq!(t.fake.links_of("a"), ["lo", "eth0@b/eth0"]);
}

#[tokio::test]
async fn a_taken_link_name_is_refused_naming_the_namespace_and_counts_nothing() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    is(
        t.lab.veth(&name("z"), a, &name("y"), b).await,
        |e| e.kind() == ErrorKind::Exists,
        "link y already exists in namespace b",
    );
    assert_eq!(t.lab.links_held(), 2);
}

#[tokio::test]
async fn a_veth_pair_knows_its_peer_both_ways() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    assert_eq!(
        t.node("a", "x").unwrap().peer,
        Some(("b".into(), "y".into()))
    );
    assert_eq!(
        t.node("b", "y").unwrap().peer,
        Some(("a".into(), "x".into()))
    );
}

#[tokio::test]
async fn links_made_are_counted_and_the_loopback_is_not() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    t.lab.bridge(&name("br0"), a).await.unwrap();
    t.lab.loopback(a).await.unwrap();
    assert_eq!(t.lab.links_held(), 3);
    assert!(t.said("size 2 3"));
}

#[tokio::test]
async fn the_loopback_is_one_link_however_often_it_is_asked_for() {
    let mut t = lab();
    let a = t.ns("a");
    let lo1 = t.lab.loopback(a).await.unwrap();
    let lo2 = t.lab.loopback(a).await.unwrap();
    assert_eq!(lo1, lo2);
    assert_eq!(t.node("a", "lo").unwrap().kind, LinkKind::Loopback);
}

#[tokio::test]
async fn a_link_is_found_by_name_where_it_is_now() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let c = t.ns("c");
    let (x, _) = t.veth("x", a, "y", b).await;
    assert_eq!(t.lab.link_named(a, "x").unwrap(), x);
    t.lab.move_to(x, c).await.unwrap();
    assert_eq!(t.lab.link_named(c, "x").unwrap(), x);
    is(
        t.lab.link_named(a, "x"),
        |e| e.kind() == ErrorKind::NotFound,
        "namespace a has no link x of this run",
    );
}

#[tokio::test]
async fn a_link_the_run_did_not_make_is_not_found_by_name() {
    let mut t = lab();
    let a = t.ns("a");
    // The loopback exists in the kernel, but the scenario never asked for it.
    is(
        t.lab.link_named(a, "lo"),
        |e| e.kind() == ErrorKind::NotFound,
        "links a program made are not the run's",
    );
}

#[tokio::test]
async fn a_link_is_up_in_the_picture_only_once_the_kernel_said_so() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    t.fake.fail_next("set", Errno::EPERM);
    assert!(t.lab.set_up(x, true).await.is_err());
    assert!(!t.node("a", "x").unwrap().up);
    t.lab.set_up(x, true).await.unwrap();
    assert!(t.node("a", "x").unwrap().up);
    assert!(t.said("link set x up (a)"));
}

#[tokio::test]
async fn an_mtu_out_of_range_says_what_a_veth_accepts() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    is(
        t.lab.set_mtu(x, 20).await,
        |e| e.kind() == ErrorKind::Invalid,
        "68-65535 for a veth",
    );
    t.lab.set_mtu(x, 9000).await.unwrap();
    assert_eq!(t.lab.link_info(x).await.unwrap().mtu, 9000);
}

#[tokio::test]
async fn a_mac_is_set_and_read_back() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    let mac: Mac = "02:00:00:00:00:2a".parse().unwrap();
    t.lab.set_mac(x, mac).await.unwrap();
    assert_eq!(t.lab.link_info(x).await.unwrap().mac, "02:00:00:00:00:2a");
    assert!(t.said("link set x address"));
}

#[tokio::test]
async fn a_moved_link_is_renumbered_and_its_peer_follows_it() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let c = t.ns("c");
    let (x, _) = t.veth("x", a, "y", b).await;
    let before = t.lab.link_info(x).await.unwrap().index;
    t.lab.move_to(x, c).await.unwrap();
    let after = t.lab.link_info(x).await.unwrap();
    assert_eq!(after.name, "x");
    assert_ne!((before, "a"), (after.index, "c"));
    assert_eq!(
        t.node("b", "y").unwrap().peer,
        Some(("c".into(), "x".into()))
    );
    assert_eq!(t.fake.links_of("c"), ["lo", "x@b/y"]);
}

#[tokio::test]
async fn moving_a_link_where_it_is_asks_nothing() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    t.lab.move_to(x, a).await.unwrap();
    assert!(t.fake.logged("move").is_empty());
}

#[tokio::test]
async fn the_loopback_cannot_move() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let lo = t.lab.loopback(a).await.unwrap();
    is(
        t.lab.move_to(lo, b).await,
        |e| e.kind() == ErrorKind::Invalid,
        "every namespace keeps its own",
    );
}

#[tokio::test]
async fn a_move_onto_a_taken_name_fails_and_leaves_the_link_where_it_was() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    t.veth("x", b, "z", a).await;
    is(
        t.lab.move_to(x, b).await,
        |e| e.kind() == ErrorKind::Exists,
        "cannot move x into b: that namespace already has a link with this name",
    );
    assert_eq!(t.lab.link_named(a, "x").unwrap(), x);
    assert!(t.lab.link_info(x).await.is_ok());
}

#[tokio::test]
async fn a_moved_link_arrives_down_without_its_addresses_or_bridge() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let c = t.ns("c");
    let (x, _) = t.veth("x", a, "y", b).await;
    let br = t.lab.bridge(&name("br0"), a).await.unwrap();
    t.lab.set_master(x, br).await.unwrap();
    t.lab.add_address(x, cidr("10.0.0.1/24")).await.unwrap();
    t.lab.set_up(x, true).await.unwrap();
    t.lab.move_to(x, c).await.unwrap();
    let moved = t.node("c", "x").unwrap();
    assert!(!moved.up && moved.addresses.is_empty() && moved.master.is_none());
    assert_eq!(
        t.lab.link_info(x).await.unwrap().addresses,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn addresses_are_added_and_removed_as_the_kernel_has_them() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    t.lab.add_address(x, cidr("10.0.0.1/24")).await.unwrap();
    t.lab.add_address(x, cidr("fd00::1/64")).await.unwrap();
    assert_eq!(
        t.node("a", "x").unwrap().addresses,
        ["10.0.0.1/24", "fd00::1/64"]
    );
    t.lab.remove_address(x, cidr("10.0.0.1/24")).await.unwrap();
    assert_eq!(t.node("a", "x").unwrap().addresses, ["fd00::1/64"]);
    is(
        t.lab.remove_address(x, cidr("10.0.0.9/24")).await,
        |e| e.kind() == ErrorKind::NotFound,
        "no such address",
    );
}

#[tokio::test]
async fn an_address_twice_is_refused_and_recorded_once() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    t.lab.add_address(x, cidr("10.0.0.1/24")).await.unwrap();
    is(
        t.lab.add_address(x, cidr("10.0.0.1/24")).await,
        |e| e.kind() == ErrorKind::Exists,
        "address add 10.0.0.1/24 dev x (a)",
    );
    assert_eq!(t.node("a", "x").unwrap().addresses.len(), 1);
}

#[tokio::test]
async fn a_bridge_port_must_be_in_the_bridges_namespace() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (_, y) = t.veth("x", a, "y", b).await;
    let br = t.lab.bridge(&name("br0"), a).await.unwrap();
    is(
        t.lab.set_master(y, br).await,
        |e| e.kind() == ErrorKind::Invalid,
        "y (b) and br0 (a) are in different namespaces",
    );
}

#[tokio::test]
async fn only_a_bridge_can_be_a_master() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    let (z, _) = t.veth("z", a, "w", b).await;
    is(
        t.lab.set_master(x, z).await,
        |e| e.kind() == ErrorKind::Invalid,
        "z is a veth link, not a bridge",
    );
    assert!(t.fake.logged("set").is_empty());
}

#[tokio::test]
async fn a_bridge_or_the_loopback_as_a_port_is_refused_in_words_before_the_kernel() {
    let mut t = lab();
    let a = t.ns("a");
    let br = t.lab.bridge(&name("br0"), a).await.unwrap();
    let br1 = t.lab.bridge(&name("br1"), a).await.unwrap();
    let lo = t.lab.loopback(a).await.unwrap();
    for (port, bridge, said) in [
        (
            br,
            br,
            "br0 is itself a bridge: a bridge cannot be a port of a bridge",
        ),
        (br1, br, "br1 is itself a bridge"),
        (
            lo,
            br,
            "lo is the loopback: it cannot be a port of a bridge",
        ),
    ] {
        is(
            t.lab.set_master(port, bridge).await,
            |e| e.kind() == ErrorKind::Invalid,
            said,
        );
    }
    assert!(t.fake.logged("set").is_empty());
}

#[tokio::test]
async fn a_rate_past_any_link_is_refused_before_the_kernel() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    let wild = Shaping {
        rate_bps: 2_900_000_000_000_000_000,
        ..Default::default()
    };
    is(
        t.lab.set_shaping(x, wild).await,
        |e| e.kind() == ErrorKind::Invalid,
        "a rate of 2900000000000000000 bit/s is more than any link carries",
    );
    assert!(t.fake.logged("shape").is_empty() && t.fake.logged("qdisc").is_empty());
    let fastest = Shaping {
        rate_bps: MAX_RATE_BPS,
        ..Default::default()
    };
    t.lab.set_shaping(x, fastest).await.unwrap();
}

#[tokio::test]
async fn a_port_of_a_bridge_is_drawn_as_one() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    let br = t.lab.bridge(&name("br0"), a).await.unwrap();
    t.lab.set_master(x, br).await.unwrap();
    assert_eq!(t.node("a", "x").unwrap().master.as_deref(), Some("br0"));
    assert_eq!(t.node("a", "br0").unwrap().kind, LinkKind::Bridge);
}

#[tokio::test]
async fn shaping_is_set_replaced_and_cleared() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    let delay = Shaping {
        delay_us: 10_000,
        ..Default::default()
    };
    t.lab.set_shaping(x, delay).await.unwrap();
    assert_eq!(t.node("a", "x").unwrap().shaping, Some(delay.describe()));
    t.lab.clear_shaping(x).await.unwrap();
    assert_eq!(t.node("a", "x").unwrap().shaping, None);
    is(
        t.lab.clear_shaping(x).await,
        |e| e.kind() == ErrorKind::NotFound,
        "qdisc del dev x root (a)",
    );
}

#[tokio::test]
async fn forwarding_is_turned_on_and_off_and_drawn() {
    let mut t = lab();
    let a = t.ns("a");
    t.lab.set_forwarding(a, true).await.unwrap();
    assert!(t.fake.forwarding("a"));
    assert!(t.lab.topology().namespaces[0].forwarding);
    t.lab.set_forwarding(a, false).await.unwrap();
    assert!(!t.fake.forwarding("a"));
    assert!(!t.lab.topology().namespaces[0].forwarding);
}
