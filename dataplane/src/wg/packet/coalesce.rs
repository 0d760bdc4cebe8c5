//! Receive-side coalescing (GRO in userspace): consecutive in-order TCP segments of one
//! flow become one superframe written to the TAP with a virtio-net header, so the
//! sandbox's TCP stack gets up to 64 KiB per packet, as Linux GRO would give it.
//!
//! A segment merges into its flow's pending superframe when it continues the sequence,
//! carries the same ACK, window and options, no flags but ACK/PSH, and the same
//! payload size as the first (a shorter one ends the superframe). Anything else flushes
//! the flow first, so order within a flow is kept.

use super::checksum::{fold, pseudo_v4, sum};
use super::segment::{ETHERTYPE_IPV4, ETH_LEN};
use super::vnet::{VnetHdr, F_DATA_VALID, F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, VNET_HDR_LEN};

/// Flows held at once.
const SLOTS: usize = 8;
/// The largest superframe (IPv4 total length).
const MAX_IP: usize = 65_535;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

#[derive(Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    addrs: [u8; 8],
    ports: [u8; 4],
}

struct Pending {
    key: FlowKey,
    /// vnet header room + headers + payload so far.
    buf: Vec<u8>,
    headers: usize,
    mss: usize,
    next_seq: u32,
    segments: usize,
    closed: bool,
    age: u64,
}

/// Coalesces frames for one TAP.
pub struct Coalescer {
    slots: Vec<Pending>,
    clock: u64,
    single: Vec<u8>,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

/// What a mergeable TCP segment looks like.
struct Seg {
    key: FlowKey,
    headers: usize,
    seq: u32,
    flags: u8,
    payload: usize,
}

fn tcp_segment(frame: &[u8]) -> Option<Seg> {
    if frame.len() < ETH_LEN + 40 || frame[12..14] != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = &frame[ETH_LEN..];
    if ip[0] != 0x45 || ip[9] != 6 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return None;
    }
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if total != frame.len() - ETH_LEN {
        return None;
    }
    let tcp = &ip[20..];
    let doff = ((tcp[12] >> 4) as usize) * 4;
    let flags = tcp[13];
    if doff < 20 || tcp.len() < doff || flags & !(TCP_ACK | TCP_PSH) != 0 || flags & TCP_ACK == 0 {
        return None;
    }
    let payload = total - 20 - doff;
    if payload == 0 {
        return None;
    }
    let mut addrs = [0u8; 8];
    addrs.copy_from_slice(&ip[12..20]);
    let mut ports = [0u8; 4];
    ports.copy_from_slice(&tcp[0..4]);
    Some(Seg {
        key: FlowKey { addrs, ports },
        headers: ETH_LEN + 20 + doff,
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        flags,
        payload,
    })
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new() -> Coalescer {
        Coalescer {
            slots: Vec::with_capacity(SLOTS),
            clock: 0,
            single: vec![0u8; VNET_HDR_LEN + 65_536],
        }
    }

    /// Takes one frame; writes whatever must go to the TAP now through `out`.
    pub fn push(&mut self, frame: &[u8], out: &mut dyn FnMut(&[u8])) {
        self.clock += 1;
        let Some(seg) = tcp_segment(frame) else {
            self.pass_through(frame, out);
            return;
        };
        if let Some(i) = self.slots.iter().position(|p| p.key == seg.key) {
            if self.can_merge(i, &seg, frame) {
                let p = &mut self.slots[i];
                p.buf.extend_from_slice(&frame[seg.headers..]);
                p.next_seq = seg.seq.wrapping_add(seg.payload as u32);
                p.segments += 1;
                p.age = self.clock;
                let tcp_flags = VNET_HDR_LEN + ETH_LEN + 20 + 13;
                p.buf[tcp_flags] |= seg.flags & TCP_PSH;
                if seg.payload < p.mss || seg.flags & TCP_PSH != 0 {
                    p.closed = true;
                    self.flush_slot(i, out);
                }
                return;
            }
            self.flush_slot(i, out);
        }
        if self.slots.len() == SLOTS {
            let oldest = self
                .slots
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.age)
                .map(|(i, _)| i)
                .unwrap_or(0);
            self.flush_slot(oldest, out);
        }
        let mut buf = Vec::with_capacity(VNET_HDR_LEN + 65_536);
        buf.resize(VNET_HDR_LEN, 0);
        buf.extend_from_slice(frame);
        let closed = seg.flags & TCP_PSH != 0;
        self.slots.push(Pending {
            key: seg.key,
            buf,
            headers: seg.headers,
            mss: seg.payload,
            next_seq: seg.seq.wrapping_add(seg.payload as u32),
            segments: 1,
            closed,
            age: self.clock,
        });
        if closed {
            let last = self.slots.len() - 1;
            self.flush_slot(last, out);
        }
    }

    fn can_merge(&self, i: usize, seg: &Seg, frame: &[u8]) -> bool {
        let p = &self.slots[i];
        let head = &p.buf[VNET_HDR_LEN..VNET_HDR_LEN + p.headers];
        let tcp_at = ETH_LEN + 20;
        !p.closed
            && seg.headers == p.headers
            && seg.seq == p.next_seq
            && seg.payload <= p.mss
            && p.buf.len() - VNET_HDR_LEN - ETH_LEN + seg.payload <= MAX_IP
            // Same ACK and window, same options (timestamps included), as Linux GRO requires.
            && head[tcp_at + 8..tcp_at + 12] == frame[tcp_at + 8..tcp_at + 12]
            && head[tcp_at + 14..tcp_at + 16] == frame[tcp_at + 14..tcp_at + 16]
            && head[tcp_at + 20..] == frame[tcp_at + 20..seg.headers]
            && head[..12] == frame[..12]
            && head[ETH_LEN + 1] == frame[ETH_LEN + 1]
    }

    fn flush_slot(&mut self, i: usize, out: &mut dyn FnMut(&[u8])) {
        let mut p = self.slots.swap_remove(i);
        let frame_len = p.buf.len() - VNET_HDR_LEN;
        let l4 = ETH_LEN + 20;
        let f = &mut p.buf[VNET_HDR_LEN..];
        if p.segments == 1 {
            VnetHdr {
                flags: F_DATA_VALID,
                gso_type: GSO_NONE,
                ..Default::default()
            }
            .write(&mut p.buf[..VNET_HDR_LEN]);
            out(&p.buf);
            return;
        }
        let ip_len = (frame_len - ETH_LEN) as u16;
        f[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&ip_len.to_be_bytes());
        f[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        let ipc = !fold(sum(&f[ETH_LEN..l4], 0));
        f[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&ipc.to_be_bytes());
        // Partial checksum: the pseudo-header sum over the coalesced length; the kernel
        // treats it like a packet its own GRO built.
        let src = std::net::Ipv4Addr::new(f[26], f[27], f[28], f[29]);
        let dst = std::net::Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        let partial = fold(pseudo_v4(src, dst, 6, frame_len - l4));
        f[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: p.headers as u16,
            gso_size: p.mss as u16,
            csum_start: l4 as u16,
            csum_offset: 16,
        }
        .write(&mut p.buf[..VNET_HDR_LEN]);
        out(&p.buf);
    }

    fn pass_through(&mut self, frame: &[u8], out: &mut dyn FnMut(&[u8])) {
        let n = VNET_HDR_LEN + frame.len();
        if n > self.single.len() {
            return;
        }
        VnetHdr::default().write(&mut self.single[..VNET_HDR_LEN]);
        self.single[VNET_HDR_LEN..n].copy_from_slice(frame);
        out(&self.single[..n]);
    }

    /// Writes every pending superframe (at the end of a receive batch).
    pub fn flush(&mut self, out: &mut dyn FnMut(&[u8])) {
        while !self.slots.is_empty() {
            self.flush_slot(0, out);
        }
    }
}
