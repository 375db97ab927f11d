//! The scenario gallery: each scenario in guests/ passes on this machine and leaves nothing.
//! Parts that need a kernel feature this machine lacks (netem) are reported skipped, visibly:
//! in the scenario's own report, and in the list scripts/test.sh prints at the end.

use std::ffi::OsString;

use crate::common::*;

fn run_scenario(name: &str, args: &[&str]) -> Run {
    let mut v: Vec<OsString> = vec!["run".into(), guest(name).into()];
    if !args.is_empty() {
        v.push("--".into());
        v.extend(args.iter().map(OsString::from));
    }
    run_clean(v)
}

#[test]
fn router_forwards_between_two_subnets_with_one_hop() {
    run_scenario("router", &[])
        .assert_code(0)
        .assert_stdout("+ sysctl net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 (r)")
        .assert_stdout("+ route add default via 10.0.1.1 (h1)")
        .assert_stdout("ok   h1's default route goes via 10.0.1.1 on eth0")
        .assert_stdout(
            "ok   h1 reaches h2 with no loss: 3 packets transmitted, 3 received, 0% packet loss",
        )
        .assert_stdout("ok   the path crosses one router (TTL 64 - 1 = 63)")
        .assert_stdout("ok   no forwarding, no reply")
        .assert_stdout("PASS router (5 steps, 5 checks passed, 0 failed");
}

#[test]
fn lan_pingall_over_a_bridge() {
    run_scenario("lan", &[])
        .assert_code(0)
        .assert_stdout("+ link add br0 (sw) type bridge")
        .assert_stdout("+ link set sw-h1 master br0 (sw)")
        .assert_stdout("ok   h1 -> h4: 1 packets transmitted, 1 received, 0% packet loss")
        .assert_stdout("ok   pingall: 0% dropped: 0 of 12 pairs lost packets")
        .assert_stdout("PASS lan (2 steps, 14 checks passed, 0 failed");
}

#[test]
fn lan_takes_its_size_from_the_command_line() {
    run_scenario("lan", &["--hosts", "8"])
        .assert_code(0)
        .assert_stdout("ok   h8 -> h7")
        .assert_stdout("0 of 56 pairs lost packets")
        .assert_stdout("PASS lan (2 steps, 58 checks passed");
    run_scenario("lan", &["--hosts", "many"])
        .assert_code(1)
        .assert_stdout(
            "FAIL lan: the scenario returned an error: argument --hosts \"many\" is not valid",
        );
}

#[test]
fn ipv6_seed_pings_at_once() {
    run_scenario("ipv6", &[])
        .assert_code(0)
        .assert_stdout("+ address add fd00::1/64 dev ns01-veth0 (ns01)")
        .assert_stdout("ok   fd00::/64 is on-link via ns01-veth0")
        .assert_stdout(
            "ok   ping -6 lost nothing: 3 packets transmitted, 3 received, 0% packet loss",
        )
        .assert_stdout("PASS ipv6");
}

#[test]
fn shaped_link_measures_its_rate_and_netem_where_the_kernel_has_it() {
    let run = run_scenario("shaped", &[]);
    run.assert_code(0)
        .assert_stdout("+ qdisc replace dev eth0 root rate 10Mbit (client)")
        .assert_stdout("$ server: iperf3 -s -B 10.0.0.2 &   (background, pid")
        .assert_stdout("ok   iperf3 measures the 10 Mbit/s limit within 15%")
        .assert_stdout("+ kill iperf3 (pid")
        .assert_stdout("ok   the iperf3 server stops cleanly when asked")
        .assert_stdout("+ qdisc del dev eth0 root (client)");
    if run.stdout.contains("netem: SKIPPED") {
        run.assert_stdout(
            "ok   netem: SKIPPED (this kernel has no netem): qdisc replace dev eth0 root delay 50ms (client): \
             this kernel has no netem (the qdisc kind is unknown to it), which delay, jitter and loss need; rate alone works (tbf)",
        );
        skipped("shaped: netem delay (100 ms RTT) and 10% loss: this kernel has no netem");
    } else {
        run.assert_stdout("ok   50 ms each way makes a round trip of about 100 ms")
            .assert_stdout("ok   10% loss over 200 pings");
    }
}

#[test]
fn chain_builds_the_benchmark_lab() {
    run_scenario("chain", &["--n", "5"])
        .assert_code(0)
        .assert_stdout("+ netns add c4")
        .assert_stdout("+ address add 10.0.16.2/30 dev left (c4)")
        .assert_stdout("ok   the chain is built: 5 namespaces")
        .assert_stdout("PASS chain");
}
