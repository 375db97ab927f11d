//! Link shaping on a link's egress, through netlink: a tbf qdisc for a rate alone, netem for
//! delay, jitter and loss (with its own rate). netlink-packet-route has no types for either, so
//! their options are encoded here from the kernel's structs (include/uapi/linux/pkt_sched.h).

use futures::StreamExt;
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcHeader, TcMessage, TcOption};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST,
};

use super::netns::Namespace;
use crate::error::{ErrorKind, LabError, LabResult};

/// The fastest rate a link may be shaped to: 10 Tbit/s, far past what a veth carries, and where
/// tbf's arithmetic on bytes per second still has room (2.9e18 bit/s reached the kernel before).
pub const MAX_RATE_BPS: u64 = 10_000_000_000_000;

/// What a scenario asks of a link's egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shaping {
    pub delay_us: u32,
    pub jitter_us: u32,
    pub loss_ppm: u32,
    pub rate_bps: u64,
}

impl Shaping {
    fn needs_netem(&self) -> bool {
        self.delay_us > 0 || self.jitter_us > 0 || self.loss_ppm > 0
    }

    pub fn validate(&self) -> LabResult<()> {
        if self.loss_ppm > 1_000_000 {
            return Err(LabError::invalid(format!(
                "loss of {} ppm is more than 100% (1000000 ppm)",
                self.loss_ppm
            )));
        }
        if self.jitter_us > self.delay_us {
            return Err(LabError::invalid(format!(
                "jitter of {} us is larger than the delay of {} us: netem needs jitter <= delay",
                self.jitter_us, self.delay_us
            )));
        }
        if self.rate_bps > MAX_RATE_BPS {
            return Err(LabError::invalid(format!(
                "a rate of {} bit/s is more than any link carries: shape at most {} ({} bit/s)",
                self.rate_bps,
                format_rate(MAX_RATE_BPS),
                MAX_RATE_BPS
            )));
        }
        if *self == Shaping::default() {
            return Err(LabError::invalid(
                "shaping with no delay, loss or rate: use clear-shaping to remove shaping",
            ));
        }
        Ok(())
    }

    /// As `tc` would describe it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.rate_bps > 0 {
            parts.push(format!("rate {}", format_rate(self.rate_bps)));
        }
        if self.delay_us > 0 {
            parts.push(format!("delay {}ms", self.delay_us as f64 / 1000.0));
        }
        if self.jitter_us > 0 {
            parts.push(format!("jitter {}ms", self.jitter_us as f64 / 1000.0));
        }
        if self.loss_ppm > 0 {
            parts.push(format!("loss {}%", self.loss_ppm as f64 / 10_000.0));
        }
        parts.join(" ")
    }
}

fn format_rate(bps: u64) -> String {
    match bps {
        b if b >= 1_000_000_000 && b % 1_000_000_000 == 0 => format!("{}Gbit", b / 1_000_000_000),
        b if b >= 1_000_000 && b % 1_000_000 == 0 => format!("{}Mbit", b / 1_000_000),
        b if b >= 1000 && b % 1000 == 0 => format!("{}Kbit", b / 1000),
        b => format!("{b}bit"),
    }
}

// Attribute numbers and layouts from include/uapi/linux/pkt_sched.h.
const TCA_OPTIONS: u16 = 2;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// The kernel's scheduler clock: one tick is 64 ns (PSCHED_SHIFT = 6).
const NS_PER_TICK: u64 = 64;

/// struct tc_ratespec { u8 cell_log; u8 linklayer; u16 overhead; s16 cell_align; u16 mpu; u32 rate; }
fn ratespec(bytes_per_s: u64) -> [u8; 12] {
    let mut r = [0u8; 12];
    r[1] = TC_LINKLAYER_ETHERNET;
    r[8..12].copy_from_slice(&(bytes_per_s.min(u32::MAX as u64) as u32).to_ne_bytes());
    r
}

/// TCA_OPTIONS of a tbf: struct tc_tbf_qopt { ratespec rate, peakrate; u32 limit, buffer, mtu }
/// plus the burst in bytes (from which the kernel computes the buffer) and a 64-bit rate.
fn tbf_options(rate_bps: u64) -> Vec<TcOption> {
    let bytes_per_s = rate_bps / 8;
    // A burst of 10 ms at the rate, at least 16 KiB so large segments still pass; a queue of
    // 100 ms on top of that.
    let burst = (bytes_per_s / 100).max(16 << 10);
    let limit = (bytes_per_s / 10 + burst).min(u32::MAX as u64) as u32;
    let mut qopt = Vec::with_capacity(36);
    qopt.extend_from_slice(&ratespec(bytes_per_s));
    qopt.extend_from_slice(&[0u8; 12]);
    qopt.extend_from_slice(&limit.to_ne_bytes());
    qopt.extend_from_slice(&0u32.to_ne_bytes());
    qopt.extend_from_slice(&0u32.to_ne_bytes());
    let mut opts = vec![
        TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, qopt)),
        TcOption::Other(DefaultNla::new(
            TCA_TBF_BURST,
            (burst.min(u32::MAX as u64) as u32).to_ne_bytes().to_vec(),
        )),
    ];
    if bytes_per_s > u32::MAX as u64 {
        opts.push(TcOption::Other(DefaultNla::new(
            TCA_TBF_RATE64,
            bytes_per_s.to_ne_bytes().to_vec(),
        )));
    }
    opts
}

fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut out = Vec::with_capacity((len + 3) & !3);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize((len + 3) & !3, 0);
    out
}

/// TCA_OPTIONS of a netem, which unlike most qdiscs is not nested: struct tc_netem_qopt
/// { u32 latency, limit, loss, gap, duplicate, jitter } followed by attributes.
fn netem_options(s: &Shaping) -> Vec<u8> {
    let ticks = |us: u32| ((us as u64 * 1000) / NS_PER_TICK).min(u32::MAX as u64) as u32;
    let loss = ((s.loss_ppm as u64 * u32::MAX as u64) / 1_000_000) as u32;
    let mut out = Vec::new();
    for v in [ticks(s.delay_us), 1000, loss, 0, 0, ticks(s.jitter_us)] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out.extend(nla(
        TCA_NETEM_LATENCY64,
        &(s.delay_us as i64 * 1000).to_ne_bytes(),
    ));
    out.extend(nla(
        TCA_NETEM_JITTER64,
        &(s.jitter_us as i64 * 1000).to_ne_bytes(),
    ));
    if s.rate_bps > 0 {
        let bytes_per_s = s.rate_bps / 8;
        // struct tc_netem_rate { u32 rate; s32 packet_overhead; u32 cell_size; s32 cell_overhead; }
        let mut rate = [0u8; 16];
        rate[..4].copy_from_slice(&(bytes_per_s.min(u32::MAX as u64) as u32).to_ne_bytes());
        out.extend(nla(TCA_NETEM_RATE, &rate));
        if bytes_per_s > u32::MAX as u64 {
            out.extend(nla(TCA_NETEM_RATE64, &bytes_per_s.to_ne_bytes()));
        }
    }
    out
}

/// Send one qdisc request and wait for the kernel's answer.
async fn request(
    ns: &Namespace,
    msg: RouteNetlinkMessage,
    flags: u16,
) -> LabResult<Result<(), rtnetlink::Error>> {
    ns.netlink(|handle| ask(handle, msg, flags)).await
}

async fn ask(
    mut handle: rtnetlink::Handle,
    msg: RouteNetlinkMessage,
    flags: u16,
) -> Result<(), rtnetlink::Error> {
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut answers = handle.request(req)?;
    while let Some(answer) = answers.next().await {
        if let NetlinkPayload::Error(e) = answer.payload {
            if e.code.is_some() {
                return Err(rtnetlink::Error::NetlinkError(e));
            }
        }
    }
    Ok(())
}

fn root_qdisc(index: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(index as i32);
    msg.header = TcHeader {
        index: index as i32,
        parent: TcHandle::ROOT,
        ..msg.header
    };
    msg
}

/// Replace the root qdisc of link `index` with one that shapes as asked (validated by the lab
/// before it asks: [`Shaping::validate`]).
pub async fn set(ns: &Namespace, index: u32, s: &Shaping, what: &str) -> LabResult<()> {
    let mut msg = root_qdisc(index);
    if s.needs_netem() {
        msg.attributes.push(TcAttribute::Kind("netem".into()));
        msg.attributes.push(TcAttribute::Other(DefaultNla::new(
            TCA_OPTIONS,
            netem_options(s),
        )));
    } else {
        msg.attributes.push(TcAttribute::Kind("tbf".into()));
        msg.attributes
            .push(TcAttribute::Options(tbf_options(s.rate_bps)));
    }
    let sent = request(
        ns,
        RouteNetlinkMessage::NewQueueDiscipline(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
    .await?;
    match sent.map_err(|e| LabError::from_netlink(e, what)) {
        Err(e) if e.kind() == ErrorKind::NotFound && s.needs_netem() => Err(e.reworded(ErrorKind::Os, |_| format!(
            "{what}: this kernel has no netem (the qdisc kind is unknown to it), which delay, jitter and loss need; \
             rate alone works (tbf)"
        ))),
        // As a kernel without the module (or one that cannot load it: no /lib/modules for
        // this kernel) answers: ENOENT, "No such file or directory".
        Err(e) if e.kind() == ErrorKind::NotFound => Err(e.reworded(ErrorKind::Os, |_| format!(
            "{what}: this kernel has no tbf (the qdisc kind is unknown to it, and could not be \
             loaded: sch_tbf), which a rate alone needs; load it (modprobe sch_tbf) or shape with \
             a delay too (netem has a rate of its own)"
        ))),
        other => other,
    }
}

/// Remove the root qdisc of link `index`, back to the kernel's default; fine if there is none.
pub async fn clear(ns: &Namespace, index: u32, what: &str) -> LabResult<()> {
    let sent = request(
        ns,
        RouteNetlinkMessage::DelQueueDiscipline(root_qdisc(index)),
        0,
    )
    .await?;
    match sent.map_err(|e| LabError::from_netlink(e, what)) {
        // No shaping to remove: the link keeps its default qdisc.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Invalid) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tbf_parameters_follow_the_rate() {
        let opts = tbf_options(10_000_000);
        let TcOption::Other(parms) = &opts[0] else {
            panic!()
        };
        let mut buf = vec![0u8; rtnetlink::packet_core::Nla::value_len(parms)];
        rtnetlink::packet_core::Nla::emit_value(parms, &mut buf);
        assert_eq!(buf.len(), 36);
        assert_eq!(buf[1], TC_LINKLAYER_ETHERNET);
        assert_eq!(
            u32::from_ne_bytes(buf[8..12].try_into().unwrap()),
            1_250_000
        );
        assert_eq!(
            u32::from_ne_bytes(buf[24..28].try_into().unwrap()),
            125_000 + 16_384
        );
        assert_eq!(opts.len(), 2, "no 64-bit rate below 32 Gbit/s");
        assert_eq!(tbf_options(40_000_000_000).len(), 3);
    }

    #[test]
    fn netem_options_encode_delay_loss_and_rate() {
        let s = Shaping {
            delay_us: 50_000,
            jitter_us: 5_000,
            loss_ppm: 100_000,
            rate_bps: 8_000_000,
        };
        let o = netem_options(&s);
        let word = |i: usize| u32::from_ne_bytes(o[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(word(0), 781_250, "50 ms in 64 ns ticks");
        assert_eq!(word(1), 1000);
        assert_eq!(
            word(2),
            (u32::MAX as u64 / 10) as u32,
            "10% of the u32 range"
        );
        assert_eq!(word(5), 78_125);
        // LATENCY64, JITTER64 (12 bytes each) and RATE (20 bytes) follow the 24-byte struct.
        assert_eq!(o.len(), 24 + 12 + 12 + 20);
        assert_eq!(u16::from_ne_bytes([o[26], o[27]]), TCA_NETEM_LATENCY64);
    }

    #[test]
    fn shaping_is_validated_and_described() {
        assert!(Shaping {
            loss_ppm: 1_000_001,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(Shaping {
            delay_us: 1,
            jitter_us: 2,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(Shaping::default()
            .validate()
            .unwrap_err()
            .to_string()
            .contains("clear-shaping"));
        let s = Shaping {
            rate_bps: 10_000_000,
            delay_us: 50_000,
            loss_ppm: 100_000,
            ..Default::default()
        };
        assert_eq!(s.describe(), "rate 10Mbit delay 50ms loss 10%");
    }
}
