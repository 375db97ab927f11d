//! The end of a run's lab: the picture of it as it was, then kept (`--keep`) or torn down, and
//! the account told which.

use super::signals::{signal_name, Signals};
use nslab_lab::Lab;
use nslab_lab::{Holder, Kept, SpentOn};
use nslab_report::account::Event;
use nslab_report::console::{Console, Verbosity};

/// Keep the lab if asked and possible, else tear it down (a second Ctrl-C is answered, not
/// obeyed); either way the account says what became of it.
pub async fn finish(lab: &mut Lab, keep: bool, console: &Console, signals: &mut Signals) {
    let cost = observe(lab, console).await;
    end(lab, keep, console, signals, cost).await
}

/// What building the lab cost, taken before the kernel is read for the account's picture.
pub struct Cost {
    /// Netlink requests.
    kernel_requests: u64,
    /// Where the lab's time went, teardown aside.
    spent: Vec<SpentOn>,
}

/// The lab as the scenario left it, told to the account: what it cost.
pub async fn observe(lab: &mut Lab, console: &Console) -> Cost {
    let cost = Cost {
        kernel_requests: lab.kernel_requests(),
        spent: lab.spent(),
    };
    // What the kernel has at the end, whoever set it, when an output or --json will show it.
    let topology = match console.journal().is_some_and(|j| j.shows_events()) {
        true => lab.observed_topology().await,
        false => lab.topology(),
    };
    console.event(|| Event::Topology(topology));
    if let Some(j) = console.journal() {
        j.end_progress();
    }
    cost
}

/// Keep or tear down the lab, once [`observe`]d.
pub async fn end(lab: &mut Lab, keep: bool, console: &Console, signals: &mut Signals, cost: Cost) {
    let Cost {
        kernel_requests,
        mut spent,
    } = cost;
    if keep {
        match lab.keep() {
            Ok(kept) => {
                print_kept(&kept, console);
                tell_spent(&spent, console);
                console.event(|| Event::Teardown {
                    kept: true,
                    kernel_requests,
                    spent,
                    removed: vec![],
                    problems: vec![],
                });
                return;
            }
            Err(e) => console.warn(&format!("cannot keep the lab ({e}); removing it instead")),
        }
    }
    let report = {
        let teardown = lab.teardown();
        tokio::pin!(teardown);
        loop {
            tokio::select! {
                report = &mut teardown => break report,
                sig = signals.recv() => console.warn(&format!(
                    "{} again: still removing the lab; the runner exits as soon as that is done",
                    signal_name(sig)
                )),
            }
        }
    };
    for item in &report.removed {
        console.line(Verbosity::Verbose, &format!("teardown: removed {item}"));
    }
    for problem in &report.problems {
        console.warn(&format!("teardown: {problem}"));
    }
    spent.extend(lab.spent().into_iter().filter(SpentOn::is_teardown));
    tell_spent(&spent, console);
    console.event(|| Event::Teardown {
        kept: false,
        kernel_requests,
        spent,
        removed: report.removed.clone(),
        problems: report.problems.iter().map(ToString::to_string).collect(),
    });
}

/// Where the lab's time went, for `-v`.
fn tell_spent(spent: &[SpentOn], console: &Console) {
    if !spent.is_empty() {
        console.line(
            Verbosity::Verbose,
            &format!("lab time: {}", SpentOn::summary(spent)),
        );
    }
}

/// How to use and remove a kept lab, whichever way it is held.
pub fn print_kept(kept: &Kept, console: &Console) {
    let id = &kept.run_id;
    let say = |text: &str| console.line(Verbosity::Quiet, text);
    let (held, enter, files) = match &kept.holder {
        Holder::Pins => (
            "its namespaces stay pinned under /run/netns".to_string(),
            "ip netns exec {net} ip address".to_string(),
            format!(
                "nsenter --mount={}/{{files}} ls /tmp /run",
                nslab_lab::records::pin::BOX_DIR
            ),
        ),
        // An ordinary user's lab is held by a keeper process (lab/keep/keeper.rs).
        Holder::Keeper(pid) => {
            let user = format!("/proc/{pid}/fd/{}", nslab_lab::records::FIRST_FD);
            (
                format!("process {pid} holds its namespaces (rootless: nothing under /run/netns)"),
                format!("nsenter --preserve-credentials --user={user} --net={{net}} ip address"),
                format!(
                    "nsenter --preserve-credentials --user={user} --mount={{files}} ls /tmp /run"
                ),
            )
        }
    };
    say(&format!("kept: run {id}; {held}:"));
    for n in &kept.namespaces {
        let pinned = n.pinned.as_deref().unwrap_or_default();
        say(&format!(
            "   {:<15}  {pinned:<30}  net:[{}]",
            n.name, n.inode
        ));
    }
    if let Some(first) = kept.namespaces.first().and_then(|n| n.pinned.as_deref()) {
        say(&format!("   enter one:  {}", enter.replace("{net}", first)));
    }
    if let Some((f, _)) = kept.namespaces.iter().find_map(|n| n.files.as_ref()) {
        say(&format!("   its files:  {}", files.replace("{files}", f)));
    }
    say(&format!("   remove it:  runner cleanup {id}"));
}
