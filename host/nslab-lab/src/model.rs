//! The lab at a moment, for the picture and the report: its namespaces and links, as the run
//! built them, or as the kernel has them at the end, whoever changed them (the runner, a
//! routing daemon, a program). Part of the account's events (`--json`), hence serializable.

use serde::{Deserialize, Serialize};

/// What the lab was at a moment: its namespaces and its links.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub namespaces: Vec<NsNode>,
    pub links: Vec<LinkNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NsNode {
    pub name: String,
    /// IP forwarding on (a router).
    pub forwarding: bool,
    /// Its routes as the kernel has them at the end, as `ip route` writes them (the kernel's
    /// own connected routes left out); empty when the kernel was not asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    Veth,
    Bridge,
    Loopback,
    /// A link a program made (a dummy, a vxlan, a veth whose peer the run does not know).
    Other,
}

/// One link: a veth end, a bridge, or a loopback the scenario used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkNode {
    pub ns: String,
    pub name: String,
    pub kind: LinkKind,
    /// The other end of a veth pair: (namespace, name).
    pub peer: Option<(String, String)>,
    /// The bridge this link is a port of (in the same namespace).
    pub master: Option<String>,
    pub addresses: Vec<String>,
    /// Its queueing discipline, as `tc` would describe it.
    pub shaping: Option<String>,
    pub up: bool,
}
