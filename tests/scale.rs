//! How the runner's cost grows with the lab, counted rather than timed (bench/run.sh times it):
//! the netlink requests a chain costs per namespace, which must not depend on the chain's length.

use crate::common::*;

/// Build a chain of `n` with `--json`; the lab's netlink requests and the teardown's report.
fn chain(n: usize) -> (u64, serde_json::Value) {
    let args: Vec<std::ffi::OsString> = [
        "run".into(),
        "-q".into(),
        "--json".into(),
        "--max-namespaces".into(),
        (n + 10).to_string().into(),
        "--max-links".into(),
        (2 * n + 10).to_string().into(),
        guest("chain").into_os_string(),
        "--".into(),
        "--n".into(),
        n.to_string().into(),
    ]
    .into();
    let run = run_clean(args);
    run.assert_code(0);
    let teardown: serde_json::Value = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "teardown")
        .expect("a teardown event");
    (teardown["kernel_requests"].as_u64().unwrap(), teardown)
}

#[test]
fn a_chain_costs_five_netlink_requests_per_namespace_however_long() {
    let (short, _) = chain(10);
    let (long, teardown) = chain(40);
    // Each namespace after the first: its veth pair (one request: the lab picks both ends'
    // indexes, so nothing is looked up), two addresses, two links up. Namespaces themselves are
    // made by the helper, and teardown closes fds: neither costs a netlink request.
    assert_eq!(short, 9 * 5, "a chain of 10");
    assert_eq!(
        long - short,
        30 * 5,
        "30 more namespaces: {short} -> {long}"
    );
    assert_eq!(teardown["removed"].as_array().unwrap().len(), 40);
}
