//! Waiting for every node to show a change in `bench scale`: its resolver answering
//! (polled), its FDB and neighbour entries and its balancers' maps (kernel events),
//! each with the moment it first did.

use super::*;

impl Run<'_> {
    /// Nodes carrying the network (they have endpoints on it).
    pub(super) fn carriers(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|i| self.placed[*i] > 0)
            .collect()
    }

    /// Polls every carrier's resolver until `name` resolves (or, `present` false, no
    /// longer does); returns when each one first did, by node index.
    pub(super) async fn dns_everywhere(
        &mut self,
        name: &str,
        present: bool,
        since: Instant,
    ) -> anyhow::Result<BTreeMap<usize, (Instant, Vec<Ipv4Addr>)>> {
        let carriers = self.carriers();
        let what = if present { "appear" } else { "vanish" };
        self.dns_until(name, &carriers, since, what, |ips| {
            ips.is_empty() != present
        })
        .await
    }

    /// Polls the resolvers of `nodes` until their answer for `name` is `done` (`what`
    /// it is, for the error); returns when each one first was, by node index.
    pub(super) async fn dns_until(
        &mut self,
        name: &str,
        nodes: &[usize],
        since: Instant,
        what: &str,
        done: impl Fn(&[Ipv4Addr]) -> bool,
    ) -> anyhow::Result<BTreeMap<usize, (Instant, Vec<Ipv4Addr>)>> {
        let mut out: BTreeMap<usize, (Instant, Vec<Ipv4Addr>)> = BTreeMap::new();
        while out.len() < nodes.len() {
            if since.elapsed() > CONVERGE_WITHIN {
                bail!(
                    "{name} did not {what} in the DNS of {} of {} nodes within {}s",
                    nodes.len() - out.len(),
                    nodes.len(),
                    CONVERGE_WITHIN.as_secs()
                );
            }
            // All queries out first, then the answers: a round takes as long as the
            // slowest resolver, not the sum of them.
            let asked: Vec<usize> = nodes
                .iter()
                .copied()
                .filter(|i| !out.contains_key(i))
                .filter(|i| self.probes[*i].ask(name))
                .collect();
            for i in asked {
                if let Some(ips) = self.probes[i].answer() {
                    if done(&ips) {
                        out.insert(i, (Instant::now(), ips));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(out)
    }

    /// When node `node`'s kernel announced both the neighbour (proxy-ARP) and the FDB
    /// entry of `ip` added (or, `added` false, removed); waits for them.
    pub(super) async fn neighbour_shows(
        &self,
        node: usize,
        ip: Ipv4Addr,
        added: bool,
        what: &str,
    ) -> anyhow::Result<Instant> {
        let mac = shoal_ipam::mac_for(ip);
        let until = Instant::now() + CONVERGE_WITHIN;
        loop {
            let seen = &self.listeners.seen;
            match (
                seen.when(node, (Key::Ip(ip), added)),
                seen.when(node, (Key::Mac(mac), added)),
            ) {
                (Some(a), Some(b)) => return Ok(a.max(b)),
                _ if Instant::now() > until => bail!(
                    "{} never showed the {what} ({ip}) in its kernel",
                    self.hosts[node],
                ),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// Since when node `node`'s kernel has held exactly `want` as the service's tasks,
    /// counting from `since`, in both the map its published port draws from (in the
    /// node's namespace) and the VIP map of its client sandbox; waits for both.
    pub(super) async fn balancers_show(
        &self,
        node: usize,
        want: &BTreeSet<Ipv4Addr>,
        since: Instant,
    ) -> anyhow::Result<Instant> {
        let until = Instant::now() + CONVERGE_WITHIN;
        loop {
            let published = self.published.when(node, want, since);
            let vip = self.vips.when(node, want, since);
            if let (Some(a), Some(b)) = (published, vip) {
                return Ok(a.max(b));
            }
            if Instant::now() > until {
                bail!(
                    "{}'s {} map of {SERVICE} never held its {} tasks",
                    self.hosts[node],
                    if published.is_none() {
                        "published"
                    } else {
                        "VIP"
                    },
                    want.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
