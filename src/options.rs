//! Driver options of a network, as `shoal network create --opt` and Docker's
//! `CreateNetwork` (`docker network create -d shoal --opt ...`) give them.

use anyhow::bail;
use shoal_control::state::{VXLAN_OVERHEAD, WIREGUARD_OVERHEAD};

fn parse<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    v.parse::<T>()
        .map_err(|e| anyhow::anyhow!("{flag} {v:?}: {e}"))
}

/// The `--opt`s of `network create`: shoal's own spellings and Docker's overlay driver's.
#[derive(Debug, Default, PartialEq)]
pub struct DriverOptions {
    /// `encrypted`.
    pub encrypted: bool,
    /// `mtu=N`: the interfaces' MTU.
    pub mtu: Option<u32>,
    /// `com.docker.network.driver.mtu=N`: in Docker's overlay driver the underlay's
    /// MTU, of which the interfaces get N less VXLAN's 50 (and WireGuard's 60 when
    /// encrypted); 0 is the default.
    pub docker_mtu: Option<u32>,
    /// `com.docker.network.driver.overlay.vxlanid_list=ID`.
    pub vni: Option<u32>,
}

const KNOWN_OPTS: &str = "encrypted, mtu=N, com.docker.network.driver.mtu=N, com.docker.network.driver.overlay.vxlanid_list=ID";

impl DriverOptions {
    /// Parses `--opt` values (`KEY` or `KEY=VALUE`).
    pub fn parse(opts: &[String]) -> anyhow::Result<DriverOptions> {
        let mut out = DriverOptions::default();
        for o in opts {
            let (key, value) = match o.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (o.as_str(), None),
            };
            match (key, value) {
                // Docker turns encryption on for the key alone (`--opt encrypted`, also
                // `encrypted=`); shoal also reads true/false.
                ("encrypted", None | Some("")) => out.encrypted = true,
                ("encrypted", Some(v)) => out.encrypted = parse::<bool>("--opt encrypted", v)?,
                ("mtu", Some(v)) => out.mtu = Some(parse("--opt mtu", v)?),
                ("com.docker.network.driver.mtu", Some(v)) => {
                    let n: u32 = parse("--opt com.docker.network.driver.mtu", v)?;
                    out.docker_mtu = (n != 0).then_some(n);
                }
                ("com.docker.network.driver.overlay.vxlanid_list", Some(v)) => {
                    let ids: Vec<&str> = v.split(',').map(str::trim).collect();
                    let [id] = ids.as_slice() else {
                        bail!("--opt {o}: a shoal network has one subnet, so give one VXLAN ID");
                    };
                    out.vni = Some(
                        id.parse()
                            .map_err(|_| anyhow::anyhow!("--opt {o}: invalid vxlan id value {id:?} passed"))?,
                    );
                }
                ("com.docker.network.container_iface_prefix", _) => bail!(
                    "--opt {o}: interface prefixes belong to Docker's bridge driver; on overlay networks interfaces are eth<N> (a service can name its own with --network name=N,driver-opt=com.docker.network.endpoint.ifname=NAME)"
                ),
                _ => bail!("unknown --opt {o:?}: shoal knows {KNOWN_OPTS}"),
            }
        }
        if out.mtu.is_some() && out.docker_mtu.is_some() {
            bail!("give either --opt mtu (the interfaces') or --opt com.docker.network.driver.mtu (the underlay's), not both");
        }
        Ok(out)
    }

    /// The interfaces' MTU asked for, either way it was said.
    pub fn mtu(&self) -> Option<u32> {
        let overhead = VXLAN_OVERHEAD
            + if self.encrypted {
                WIREGUARD_OVERHEAD
            } else {
                0
            };
        self.mtu
            .or_else(|| self.docker_mtu.map(|m| m.saturating_sub(overhead)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> anyhow::Result<DriverOptions> {
        DriverOptions::parse(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// moby libnetwork drivers/overlay ov_network.go: the MTU option is the underlay's;
    /// the interfaces get it less the encapsulation.
    #[test]
    fn dockers_mtu_option_is_the_underlays() {
        assert_eq!(
            opts(&["com.docker.network.driver.mtu=1400"]).unwrap().mtu(),
            Some(1350)
        );
        assert_eq!(
            opts(&["com.docker.network.driver.mtu=1400", "encrypted"])
                .unwrap()
                .mtu(),
            Some(1290)
        );
        assert_eq!(
            opts(&["com.docker.network.driver.mtu=0"]).unwrap().mtu(),
            None
        );
        assert_eq!(opts(&["mtu=1300"]).unwrap().mtu(), Some(1300));
        assert!(opts(&["mtu=1300", "com.docker.network.driver.mtu=1400"]).is_err());
        assert!(opts(&["com.docker.network.driver.mtu=big"]).is_err());
    }

    #[test]
    fn encryption_and_vxlan_ids_as_docker_spells_them() {
        assert!(opts(&["encrypted"]).unwrap().encrypted);
        assert!(opts(&["encrypted="]).unwrap().encrypted);
        assert!(!opts(&["encrypted=false"]).unwrap().encrypted);
        assert_eq!(
            opts(&["com.docker.network.driver.overlay.vxlanid_list=4242"])
                .unwrap()
                .vni,
            Some(4242)
        );
        let e = opts(&["com.docker.network.driver.overlay.vxlanid_list=1,2"]).unwrap_err();
        assert!(e.to_string().contains("one VXLAN ID"), "{e}");
        let e = opts(&["com.docker.network.driver.overlay.vxlanid_list=x"]).unwrap_err();
        assert!(e.to_string().contains("invalid vxlan id"), "{e}");
    }

    #[test]
    fn unknown_options_are_refused_with_what_is_known() {
        for o in [
            "com.docker.network.foo=1",
            "bridge.name=x",
            "com.docker.network.container_iface_prefix=x",
        ] {
            let e = opts(&[o]).unwrap_err().to_string();
            assert!(e.contains("--opt"), "{o}: {e}");
        }
        let e = opts(&["nope"]).unwrap_err().to_string();
        assert!(e.contains("com.docker.network.driver.mtu"), "{e}");
    }
}
