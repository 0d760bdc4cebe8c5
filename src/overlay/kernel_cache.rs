//! What the kernel holds after a pass, without asking it again.
//!
//! Reading shoal's objects back (`observe`) dumps every neighbour and FDB entry of the
//! namespace: O(endpoints) per change on every node, and the kernel walks its global
//! neighbour table to do it. Most changes are a remote endpoint coming or going, whose
//! kernel work is one FDB and one neighbour entry. So after a pass whose every change
//! succeeded and was such an entry, the observed state is updated by those changes and
//! reused by the next pass triggered by a state change; a pass with any other change, a
//! failure, the periodic resync or an explicit kick reads the kernel again.

use shoal_dataplane::overlay::{Change, Observed};

/// Folds `changes`, all applied successfully, into `observed`. Returns false (and the
/// cache must be dropped) when any of them is not an FDB or neighbour change.
pub fn fold(observed: &mut Observed, changes: &[Change]) -> bool {
    for c in changes {
        match c {
            Change::AddFdb { vxlan, mac, dst } => {
                observed
                    .fdb
                    .entry(vxlan.clone())
                    .or_default()
                    .insert((*mac, *dst));
            }
            Change::DelFdb { vxlan, mac, dst } => {
                if let Some(set) = observed.fdb.get_mut(vxlan) {
                    set.remove(&(*mac, *dst));
                }
            }
            Change::AddNeigh { vxlan, ip, mac } => {
                observed
                    .neigh
                    .entry(vxlan.clone())
                    .or_default()
                    .insert((*ip, *mac));
            }
            Change::DelNeigh { vxlan, ip, mac } => {
                if let Some(set) = observed.neigh.get_mut(vxlan) {
                    set.remove(&(*ip, *mac));
                }
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn entry_changes_fold_into_what_a_fresh_read_would_show() {
        let vx = "shl-vx-4096".to_string();
        let (ip, mac, mac2) = (
            Ipv4Addr::new(10, 0, 0, 9),
            [2, 0, 10, 0, 0, 9],
            [2, 1, 10, 0, 0, 9],
        );
        // Tunnel endpoints on an IPv6 underlay.
        let (n2, n3): (std::net::IpAddr, std::net::IpAddr) = (
            "fd00:5ea1::2".parse().unwrap(),
            "fd00:5ea1::3".parse().unwrap(),
        );
        let mut o = Observed::default();
        let add = [
            Change::AddFdb {
                vxlan: vx.clone(),
                mac,
                dst: n2,
            },
            Change::AddNeigh {
                vxlan: vx.clone(),
                ip,
                mac,
            },
        ];
        assert!(fold(&mut o, &add));
        assert!(o.fdb[&vx].contains(&(mac, n2)) && o.neigh[&vx].contains(&(ip, mac)));
        // The endpoint moves to n3 with a new MAC: the diff removes, then adds.
        let moved = [
            Change::DelFdb {
                vxlan: vx.clone(),
                mac,
                dst: n2,
            },
            Change::DelNeigh {
                vxlan: vx.clone(),
                ip,
                mac,
            },
            Change::AddFdb {
                vxlan: vx.clone(),
                mac: mac2,
                dst: n3,
            },
            Change::AddNeigh {
                vxlan: vx.clone(),
                ip,
                mac: mac2,
            },
        ];
        assert!(fold(&mut o, &moved));
        assert_eq!(o.fdb[&vx].iter().collect::<Vec<_>>(), vec![&(mac2, n3)]);
        assert_eq!(o.neigh[&vx].iter().collect::<Vec<_>>(), vec![&(ip, mac2)]);
        // Deleting what is not there changes nothing.
        assert!(fold(
            &mut o,
            &[Change::DelFdb {
                vxlan: "other".into(),
                mac,
                dst: n2
            }]
        ));
    }

    #[test]
    fn any_other_change_drops_the_cache() {
        let mut o = Observed::default();
        let link = Change::DeleteLink {
            name: "shl-br-4096".into(),
            why: "unwanted".into(),
        };
        assert!(!fold(&mut o, &[link]));
        assert!(fold(&mut o, &[]));
    }
}
