//! Segmentation, coalescing and the fuzz loop, on frames built from scratch here.

use super::*;

/// A TCP/IPv4 frame with `payload`, correct checksums, seq `seq`, flags ACK|`extra`.
fn tcp_frame(payload: &[u8], seq: u32, extra: u8, options: &[u8]) -> Vec<u8> {
    let doff = 20 + options.len();
    let total = 20 + doff + payload.len();
    let mut f = vec![2, 0x42, 10, 0, 0, 3, 2, 0x42, 10, 0, 0, 2, 0x08, 0x00];
    f.extend_from_slice(&[
        0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 3,
    ]);
    f[16..18].copy_from_slice(&(total as u16).to_be_bytes());
    let ipc = checksum(&f[14..34], 0);
    f[24..26].copy_from_slice(&ipc.to_be_bytes());
    f.extend_from_slice(&[0xc3, 0x50, 0, 80]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0x1111_2222u32.to_be_bytes());
    f.extend_from_slice(&[
        ((doff / 4) as u8) << 4,
        0x10 | extra,
        0x01,
        0xf5,
        0,
        0,
        0,
        0,
    ]);
    f.extend_from_slice(options);
    f.extend_from_slice(payload);
    let c = checksum(
        &f[34..],
        pseudo_v4([10, 0, 0, 2].into(), [10, 0, 0, 3].into(), 6, total - 20),
    );
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

fn valid_tcp(f: &[u8]) -> bool {
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    total == f.len() - 14
        && checksum(&f[14..34], 0) == 0
        && checksum(
            &f[34..],
            pseudo_v4([10, 0, 0, 2].into(), [10, 0, 0, 3].into(), 6, total - 20),
        ) == 0
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_tcp_superframe_becomes_valid_segments_that_concatenate_to_it() {
    let data = payload(65_000 - 54);
    let mut superframe = tcp_frame(&data, 1000, 0x08 | 0x01, &[]);
    // As the kernel hands it over: partial checksum, IP length possibly stale.
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1388,
        csum_start: 34,
        csum_offset: 16,
    };
    superframe[50..52].fill(0);
    let mut scratch = vec![0u8; 70_000];
    let mut segs: Vec<Vec<u8>> = Vec::new();
    let n = segment(&hdr, &superframe, 1450, &mut scratch, &mut |s| {
        segs.push(s.to_vec())
    })
    .unwrap();
    assert_eq!(n, data.len().div_ceil(1388));
    let mut joined = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        assert!(valid_tcp(s), "segment {i} has bad checksums or length");
        assert!(s.len() <= 14 + 1450);
        let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
        assert_eq!(seq, 1000 + (i * 1388) as u32);
        assert_eq!(
            u16::from_be_bytes([s[18], s[19]]),
            0x1234 + i as u16,
            "IP ID per segment"
        );
        let last = i + 1 == segs.len();
        assert_eq!(s[47] & 0x09 != 0, last, "FIN/PSH only on the last segment");
        joined.extend_from_slice(&s[54..]);
    }
    assert_eq!(joined, data);
}

#[test]
fn coalescing_the_segments_gives_one_superframe_with_a_vnet_header() {
    let data = payload(20 * 1388);
    let segs: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            tcp_frame(
                &data[i * 1388..(i + 1) * 1388],
                5000 + (i * 1388) as u32,
                0,
                &[],
            )
        })
        .collect();
    let mut c = Coalescer::new();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for s in &segs {
        c.push(s, &mut |o| out.push(o.to_vec()));
    }
    c.flush(&mut |o| out.push(o.to_vec()));
    assert_eq!(out.len(), 1, "one superframe");
    let hdr = VnetHdr::parse(&out[0]).unwrap();
    assert_eq!(
        (
            hdr.gso_type,
            hdr.gso_size,
            hdr.hdr_len,
            hdr.csum_start,
            hdr.csum_offset
        ),
        (GSO_TCPV4, 1388, 54, 34, 16)
    );
    assert_eq!(hdr.flags, F_NEEDS_CSUM);
    let f = &out[0][VNET_HDR_LEN..];
    assert_eq!(&f[54..], &data[..]);
    assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, f.len() - 14);
    assert_eq!(checksum(&f[14..34], 0), 0, "IP checksum redone");
    // The kernel would segment it again: doing so gives the original segments.
    let mut scratch = vec![0u8; 70_000];
    let mut again = Vec::new();
    let mut f2 = f.to_vec();
    f2[50..52].fill(0);
    let partial = fold(pseudo_v4(
        [10, 0, 0, 2].into(),
        [10, 0, 0, 3].into(),
        6,
        f.len() - 34,
    ));
    f2[50..52].copy_from_slice(&partial.to_be_bytes());
    segment(&hdr, &f2, 1450, &mut scratch, &mut |s| {
        again.push(s.to_vec())
    })
    .unwrap();
    assert_eq!(again.len(), 20);
    for (a, b) in again.iter().zip(&segs) {
        assert_eq!(&a[38..42], &b[38..42], "sequence numbers");
        assert_eq!(&a[54..], &b[54..], "payloads");
        assert!(valid_tcp(a));
    }
}

#[test]
fn coalescing_stops_at_gaps_other_flows_flags_and_short_segments() {
    let p = payload(1000);
    let mut c = Coalescer::new();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let push = |c: &mut Coalescer, f: Vec<u8>, out: &mut Vec<Vec<u8>>| {
        c.push(&f, &mut |o| out.push(o.to_vec()))
    };
    push(&mut c, tcp_frame(&p, 0, 0, &[]), &mut out);
    push(&mut c, tcp_frame(&p, 1000, 0, &[]), &mut out);
    push(&mut c, tcp_frame(&p, 5000, 0, &[]), &mut out); // gap: flushes the first two
    assert_eq!(out.len(), 1);
    assert_eq!(VnetHdr::parse(&out[0]).unwrap().gso_type, GSO_TCPV4);
    push(&mut c, tcp_frame(&p[..500], 6000, 0, &[]), &mut out); // short: closes and flushes
    assert_eq!(out.len(), 2);
    push(&mut c, tcp_frame(&p, 7000, 0x08, &[]), &mut out); // PSH alone: out at once
    assert_eq!(out.len(), 3);
    assert_eq!(VnetHdr::parse(&out[2]).unwrap().gso_type, GSO_NONE);
    let ts1 = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let ts2 = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2];
    push(&mut c, tcp_frame(&p, 8000, 0, &ts1), &mut out);
    push(&mut c, tcp_frame(&p, 9000, 0, &ts2), &mut out); // options differ: no merge
    c.flush(&mut |o| out.push(o.to_vec()));
    assert_eq!(out.len(), 5);
    let arp = vec![0xffu8; 42];
    c.push(&arp, &mut |o| out.push(o.to_vec()));
    assert_eq!(
        &out[5][VNET_HDR_LEN..],
        &arp[..],
        "non-TCP passes through unchanged"
    );
}

#[test]
fn udp_gso_and_plain_frames_are_handled() {
    let data = payload(3000);
    let mut f = vec![0u8; 14 + 28 + data.len()];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 17;
    f[26..34].copy_from_slice(&[10, 0, 0, 2, 10, 0, 0, 3]);
    f[34..38].copy_from_slice(&[0x13, 0x88, 0x13, 0x89]);
    f[42..].copy_from_slice(&data);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_UDP_L4,
        hdr_len: 42,
        gso_size: 1000,
        csum_start: 34,
        csum_offset: 6,
    };
    let mut scratch = vec![0u8; 70_000];
    let mut segs = Vec::new();
    segment(&hdr, &f, 1450, &mut scratch, &mut |s| segs.push(s.to_vec())).unwrap();
    assert_eq!(segs.len(), 3);
    for s in &segs {
        assert_eq!(u16::from_be_bytes([s[38], s[39]]) as usize, s.len() - 34);
        assert_eq!(
            checksum(
                &s[34..],
                pseudo_v4([10, 0, 0, 2].into(), [10, 0, 0, 3].into(), 17, s.len() - 34)
            ),
            0
        );
    }
    let small = tcp_frame(&payload(100), 1, 0, &[]);
    let mut got = Vec::new();
    segment(&VnetHdr::default(), &small, 1450, &mut scratch, &mut |s| {
        got.push(s.to_vec())
    })
    .unwrap();
    assert_eq!(got, vec![small.clone()]);
    assert!(
        segment(
            &VnetHdr::default(),
            &vec![0u8; 1600],
            1450,
            &mut scratch,
            &mut |_| {}
        )
        .is_err(),
        "too big"
    );
}

#[test]
fn random_input_never_panics_and_never_emits_from_garbage_headers() {
    let mut seed = 0x9e37_79b9u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut scratch = vec![0u8; 70_000];
    let mut c = Coalescer::new();
    for round in 0..20_000 {
        let len = (next() % 2000) as usize;
        let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 3 == 0 && len > 60 {
            frame[12] = 0x08;
            frame[13] = 0;
            frame[14] = 0x45;
        }
        let hdr = VnetHdr {
            flags: (next() % 4) as u8,
            gso_type: [0, 1, 5, 4, 3][(next() % 5) as usize],
            hdr_len: next() as u16,
            gso_size: (next() % 3000) as u16,
            csum_start: (next() % 3000) as u16,
            csum_offset: (next() % 64) as u16,
        };
        let _ = segment(&hdr, &frame, 1450, &mut scratch, &mut |s| {
            assert!(s.len() <= 14 + 1450)
        });
        let _ = decap_vxlan(&frame, 4789);
        let _ = VnetHdr::parse(&frame);
        c.push(&frame, &mut |_| {});
    }
    c.flush(&mut |_| {});
}

#[test]
fn segmenting_is_fast_enough_to_measure() {
    let data = payload(65_000 - 54);
    let superframe = tcp_frame(&data, 1, 0, &[]);
    let hdr = VnetHdr {
        flags: 0,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1388,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut scratch = vec![0u8; 70_000];
    let start = std::time::Instant::now();
    let mut bytes = 0usize;
    for _ in 0..200 {
        segment(&hdr, &superframe, 1450, &mut scratch, &mut |s| {
            bytes += s.len()
        })
        .unwrap();
    }
    let mbps = bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
    eprintln!("segment + checksum: {mbps:.0} MB/s");
    assert!(bytes > 200 * data.len());
}
