//! Routes: devices and gateways, the main table and every hop.

use super::*;
use crate::error::ErrorKind;

use crate::kernel::{self, Detailed, Hop};

#[tokio::test]
async fn a_route_through_a_device_the_namespace_lacks_says_so() {
    let mut t = lab();
    let a = t.ns("a");
    is(
        t.lab
            .add_route(a, &route("10.9.0.0/16", None, Some("eth9")))
            .await,
        |e| e.kind() == ErrorKind::NotFound,
        "route via device eth9: namespace a has no such link",
    );
    assert!(t.fake.logged("route").is_empty());
}

#[tokio::test]
async fn a_gateway_off_every_subnet_is_the_kernels_refusal_with_what_was_asked() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    let (x, _) = t.veth("x", a, "y", b).await;
    t.lab.add_address(x, cidr("10.0.0.1/24")).await.unwrap();
    let err = t
        .lab
        .add_route(a, &route("10.9.0.0/16", Some("10.5.0.1"), None))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("route add 10.9.0.0/16 via 10.5.0.1 (a)"),
        "{err}"
    );
    t.lab
        .add_route(a, &route("10.9.0.0/16", Some("10.0.0.2"), None))
        .await
        .unwrap();
    let routes = t.lab.routes(a).await.unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].device.as_deref(), Some("x"));
}

#[tokio::test]
async fn routes_show_the_main_table_and_details_show_every_hop_by_name() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    t.veth("z", a, "w", b).await;
    // A routing daemon's multipath route, and one in a table of its own.
    t.fake.program_adds_route(
        "a",
        Detailed {
            destination: cidr("10.8.0.0/16"),
            protocol: 188,
            metric: Some(20),
            table: kernel::route::MAIN_TABLE,
            hops: vec![
                Hop {
                    gateway: Some("10.0.0.2".parse().unwrap()),
                    oif: Some(2),
                    weight: 1,
                },
                Hop {
                    gateway: Some("10.0.1.2".parse().unwrap()),
                    oif: Some(3),
                    weight: 1,
                },
            ],
        },
    );
    t.fake.program_adds_route(
        "a",
        Detailed {
            destination: cidr("10.7.0.0/16"),
            protocol: 4,
            metric: None,
            table: 100,
            hops: vec![],
        },
    );
    let routes = t.lab.routes(a).await.unwrap();
    assert_eq!(routes.len(), 1, "only the main table");
    assert_eq!((routes[0].gateway, routes[0].device.clone()), (None, None));
    let details = t.lab.route_details(a).await.unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(details[0].protocol, "ospf");
    let devices: Vec<_> = details[0].hops.iter().map(|h| h.1.clone()).collect();
    assert_eq!(devices, [Some("x".into()), Some("z".into())]);
}

#[tokio::test]
async fn removing_a_route_that_is_not_there_says_so() {
    let mut t = lab();
    let a = t.ns("a");
    let b = t.ns("b");
    t.veth("x", a, "y", b).await;
    let r = route("10.9.0.0/16", None, Some("x"));
    t.lab.add_route(a, &r).await.unwrap();
    t.lab.remove_route(a, &r).await.unwrap();
    is(
        t.lab.remove_route(a, &r).await,
        |e| e.kind() == ErrorKind::NotFound,
        "no such route",
    );
}
