//! Host bindings for the WIT world `nslab:lab/scenario` (../wit).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "nslab:lab/scenario",
    // Every import may await the kernel (netlink, a running program), and may trap on a stale
    // handle or a host bug instead of returning an error to the guest.
    imports: { default: async | trappable },
    // The guest runs on wasmtime's async fibers so that host calls do not block tokio.
    exports: { default: async },
    // Resource handles point at the lab's own ids: holding one is the capability.
    with: {
        "nslab:lab/netns.namespace": nslab_lab::NsId,
        "nslab:lab/link.link": nslab_lab::LinkId,
        "nslab:lab/exec.process": nslab_lab::ProcId,
    },
    // Host functions return `Result<T, CallError>`; `iface::types` turns it into the WIT error.
    trappable_error_type: {
        "nslab:lab/types.error" => crate::error::CallError,
    },
});

pub use nslab::lab::{exec, link, netns, report, route, types};

impl Info {
    /// The scenario's own words about itself, made safe to print on one line each
    /// (console::printable): a name cannot erase lines or pass for the runner's output.
    pub fn printable(self) -> Info {
        let clean = |s: String| nslab_lab::text::printable(&s).into_owned();
        Info {
            name: clean(self.name),
            description: clean(self.description),
            programs: self.programs.into_iter().map(clean).collect(),
        }
    }
}
