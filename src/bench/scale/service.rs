//! The kinds of change `bench scale` times: an endpoint attached or detached, the
//! service's tasks scaled up and back down in one commit, and a worker holding one of
//! them killed; each until every node's resolver and balancers (and, for other nodes,
//! FDB and neighbour entries) reflect it.

use super::*;

impl Run<'_> {
    /// The addresses of the service's tasks (between changes).
    pub(super) fn task_ips(&self) -> BTreeSet<Ipv4Addr> {
        self.tasks.iter().map(|(_, _, ip)| *ip).collect()
    }

    /// State-only tasks of the service, named by their keys.
    pub(super) fn service_tasks(keys: &[String]) -> Vec<StateOnlyEndpoint> {
        keys.iter()
            .map(|k| StateOnlyEndpoint {
                key: k.clone(),
                name: Some(k.clone()),
                service: Some(SERVICE.into()),
            })
            .collect()
    }

    /// Attaches the service's SERVICE_TASKS tasks, from the last node backwards (so
    /// the last node, the worker that is killed, has one), learns their addresses, and
    /// waits until every carrier's resolver, published map and VIP map has them all.
    pub(super) async fn place_tasks(&mut self) -> anyhow::Result<()> {
        let n = self.hosts.len();
        let mut by_node: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for i in 0..SERVICE_TASKS {
            by_node
                .entry(n - 1 - i % n)
                .or_default()
                .push(format!("t{i}"));
        }
        let carriers = self.carriers();
        let asker = *carriers.first().context("no carrier")?;
        let since = Instant::now();
        for (node, keys) in by_node {
            self.endpoints(&BenchEndpoints {
                network: NETWORK.into(),
                node: self.hosts[node].clone(),
                attach: Self::service_tasks(&keys),
                detach: Vec::new(),
                batch: None,
            })
            .await?;
            for key in keys {
                let seen = self
                    .dns_until(&key, &[asker], Instant::now(), "appear", |ips| {
                        !ips.is_empty()
                    })
                    .await?;
                let ip = seen
                    .values()
                    .find_map(|(_, ips)| ips.first().copied())
                    .context("no address resolved")?;
                self.tasks.push((node, key, ip));
            }
        }
        self.tasks_everywhere(&carriers, since).await?;
        Ok(())
    }

    /// Waits until `nodes` resolve `tasks.<service>` to its tasks and their kernels
    /// committed them in their published and VIP maps since `since`.
    pub(super) async fn tasks_everywhere(
        &mut self,
        nodes: &[usize],
        since: Instant,
    ) -> anyhow::Result<()> {
        let want = self.task_ips();
        let name = format!("tasks.{SERVICE}");
        self.dns_until(&name, nodes, since, "list its tasks", |ips| {
            ips.iter().copied().collect::<BTreeSet<_>>() == want
        })
        .await?;
        for &node in nodes {
            self.balancers_show(node, &want, since).await?;
        }
        Ok(())
    }

    /// One change: attaches (or detaches) a named state-only endpoint on a node and
    /// returns each other carrier's convergence.
    pub(super) async fn change(
        &mut self,
        attach: bool,
        key: &str,
        owner: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        let ip = if attach {
            None
        } else {
            let (_, ips) = self
                .dns_everywhere(key, true, Instant::now())
                .await?
                .into_values()
                .next()
                .context("no carrier")?;
            ips.first().copied()
        };
        let req = BenchEndpoints {
            network: NETWORK.into(),
            node: self.hosts[owner].clone(),
            attach: if attach {
                vec![StateOnlyEndpoint {
                    key: key.into(),
                    name: Some(key.into()),
                    service: None,
                }]
            } else {
                Vec::new()
            },
            detach: if attach { Vec::new() } else { vec![key.into()] },
            batch: None,
        };
        let t0 = Instant::now();
        self.endpoints(&req).await?;
        let dns = self.dns_everywhere(key, attach, t0).await?;
        let ip = match ip {
            Some(ip) => ip,
            None => *dns
                .values()
                .find_map(|(_, ips)| ips.first())
                .context("no address resolved")?,
        };
        let what = format!("{} of {key}", if attach { "attach" } else { "detach" });
        let mut out = Vec::new();
        for (&node, (dns_at, _)) in &dns {
            if node == owner {
                continue;
            }
            let kernel = self.neighbour_shows(node, ip, attach, &what).await?;
            out.push(kernel.max(*dns_at).saturating_duration_since(t0));
        }
        Ok(out)
    }

    /// One scale step of the service: SCALE_STEP tasks `keys` attached on node `owner`
    /// in one commit (or, `up` false, detached again), and each carrier's convergence:
    /// its resolver lists the new set under `tasks.<service>`, its published and VIP
    /// maps hold it, and (other nodes than the owner) its kernel has (or no longer has)
    /// the FDB and neighbour entries of the tasks that came (or went).
    pub(super) async fn scale(
        &mut self,
        up: bool,
        keys: &[String],
        owner: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        let before = self.task_ips();
        let changed: BTreeSet<Ipv4Addr> = if up {
            BTreeSet::new()
        } else {
            self.tasks
                .iter()
                .filter(|(_, k, _)| keys.contains(k))
                .map(|(_, _, ip)| *ip)
                .collect()
        };
        let want_len = if up {
            before.len() + keys.len()
        } else {
            before.len() - changed.len()
        };
        let req = BenchEndpoints {
            network: NETWORK.into(),
            node: self.hosts[owner].clone(),
            attach: if up {
                Self::service_tasks(keys)
            } else {
                Vec::new()
            },
            detach: if up { Vec::new() } else { keys.to_vec() },
            batch: None,
        };
        self.listeners.seen.clear();
        self.published.clear();
        self.vips.clear();
        let carriers = self.carriers();
        let name = format!("tasks.{SERVICE}");
        let t0 = Instant::now();
        self.endpoints(&req).await?;
        let dns = self
            .dns_until(&name, &carriers, t0, "list the new tasks", |ips| {
                let got: BTreeSet<Ipv4Addr> = ips.iter().copied().collect();
                got.len() == want_len
                    && if up {
                        got.is_superset(&before)
                    } else {
                        got.is_disjoint(&changed) && got.is_subset(&before)
                    }
            })
            .await?;
        let want: BTreeSet<Ipv4Addr> = dns
            .values()
            .next()
            .map(|(_, ips)| ips.iter().copied().collect())
            .context("no carrier")?;
        let changed: BTreeSet<Ipv4Addr> = if up {
            want.difference(&before).copied().collect()
        } else {
            changed
        };
        let what = format!("scale {} of {SERVICE}", if up { "up" } else { "down" });
        let mut out = Vec::new();
        for (&node, (dns_at, _)) in &dns {
            let mut at = self.balancers_show(node, &want, t0).await?.max(*dns_at);
            if node != owner {
                for ip in &changed {
                    at = at.max(self.neighbour_shows(node, *ip, up, &what).await?);
                }
            }
            out.push(at.saturating_duration_since(t0));
        }
        if up {
            let ips: Vec<Ipv4Addr> = changed.into_iter().collect();
            // Which key has which address does not matter: they go together.
            for (key, ip) in keys.iter().zip(ips) {
                self.tasks.push((owner, key.clone(), ip));
            }
        } else {
            self.tasks.retain(|(_, k, _)| !keys.contains(k));
        }
        Ok(out)
    }

    /// Kills the last node's agent (a worker holding tasks of the service), and
    /// measures from the managers' Down commit until every other carrier no longer
    /// offers its tasks: its resolver's `tasks.<service>` and its published and VIP maps
    /// leave them out. Their FDB and neighbour entries stay by design (a Down node's
    /// endpoints stay in the state; only the balancers and DNS's task lists drop them),
    /// so no kernel entry of theirs is waited for. Returns the convergence per node
    /// and the time from the kill to the Down commit's proposal; then starts the agent
    /// again and waits until its tasks are back everywhere. `None` when the last node
    /// is a manager or holds no task.
    pub(super) async fn node_down(&mut self) -> anyhow::Result<Option<(Vec<Duration>, Duration)>> {
        let victim = self.hosts.len() - 1;
        let host = self.lab.host(&self.hosts[victim])?.clone();
        let gone: BTreeSet<Ipv4Addr> = self
            .tasks
            .iter()
            .filter(|(node, _, _)| *node == victim)
            .map(|(_, _, ip)| *ip)
            .collect();
        if host.role != "worker" || gone.is_empty() {
            return Ok(None);
        }
        let want: BTreeSet<Ipv4Addr> = self.task_ips().difference(&gone).copied().collect();
        let others: Vec<usize> = self
            .carriers()
            .into_iter()
            .filter(|i| *i != victim)
            .collect();
        let paths = LabPaths::new(&self.lab.name);
        self.published.clear();
        self.vips.clear();
        let killed = Instant::now();
        let killed_ms = unix_ms(SystemTime::now());
        lab::stop_agent(&paths, &host, nix::sys::signal::Signal::SIGKILL).await?;
        // Every other node's resolver is polled from the kill on, so that none is
        // asked late; the Down commit's time is read from the state afterwards.
        let name = format!("tasks.{SERVICE}");
        let dns = self
            .dns_until(
                &name,
                &others,
                killed,
                "drop the Down node's tasks",
                |ips| ips.iter().copied().collect::<BTreeSet<_>>() == want,
            )
            .await?;
        let mut done = Vec::new();
        for (&node, (dns_at, _)) in &dns {
            let lb = self.balancers_show(node, &want, killed).await?;
            done.push(lb.max(*dns_at));
        }
        let down_ms = loop {
            // A read refused meanwhile (the leader could not confirm its lead on a
            // loaded machine) is asked again.
            match self.client.get::<Vec<NodeInfo>>("/v1/nodes").await {
                Ok(nodes) => {
                    let node = nodes
                        .iter()
                        .find(|n| n.name == host.name)
                        .context("the killed node is gone from the cluster")?;
                    if node.status == NodeStatus::Down {
                        break node.status_since_ms;
                    }
                }
                Err(e) => eprintln!("bench scale: reading the nodes: {e:#}"),
            }
            if killed.elapsed() > DOWN_WITHIN {
                bail!(
                    "{} was not marked Down within {}s",
                    host.name,
                    DOWN_WITHIN.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let detect = Duration::from_millis(down_ms.saturating_sub(killed_ms));
        // The Down commit's proposal on this machine's clock, as an instant.
        let down_at = killed + detect;
        let out = done
            .iter()
            .map(|at| at.saturating_duration_since(down_at))
            .collect();
        eprintln!("bench scale: starting {} again ...", host.name);
        lab::start_agent(&paths, &host, &self.lab).await?;
        let carriers = self.carriers();
        self.tasks_everywhere(&carriers, killed).await?;
        Ok(Some((out, detect)))
    }
}
