//! Joining the routes of many workloads as Træfik's provider merge does: a router or
//! middleware defined twice must be defined the same way; a service defined twice with the same
//! settings gets the servers of both (replicas of one compose service, tasks); anything
//! else defined twice differently is dropped everywhere, with a problem for each side.

use std::collections::{BTreeMap, BTreeSet};

use super::{Problem, Severity};
use crate::config::{Routes, Service};

/// Routes merged so far and where each name came from.
#[derive(Debug, Default)]
pub struct Merged {
    routes: Routes,
    origins: BTreeMap<String, Vec<String>>,
    conflicts: BTreeSet<String>,
}

fn error(workload: &str, message: String) -> Problem {
    Problem {
        severity: Severity::Error,
        workload: workload.to_string(),
        message,
    }
}

/// Whether two services differ in nothing but their servers.
fn same_settings(a: &Service, b: &Service) -> bool {
    let mut a = a.clone();
    a.servers.clone_from(&b.servers);
    a == *b
}

impl Merged {
    /// Adds the routes of `workload`.
    pub fn add(&mut self, workload: &str, mut routes: Routes, problems: &mut Vec<Problem>) {
        for (name, router) in std::mem::take(&mut routes.routers) {
            let key = format!("router `{name}`");
            self.origins
                .entry(key.clone())
                .or_default()
                .push(workload.to_string());
            match self.routes.routers.get(&name) {
                None => {
                    self.routes.routers.insert(name, router);
                }
                Some(old) if *old == router => {}
                Some(_) => {
                    self.conflicts.insert(key);
                }
            }
        }
        for (name, service) in std::mem::take(&mut routes.services) {
            let key = format!("service `{name}`");
            self.origins
                .entry(key.clone())
                .or_default()
                .push(workload.to_string());
            match self.routes.services.get_mut(&name) {
                None => {
                    self.routes.services.insert(name, service);
                }
                Some(old) if same_settings(old, &service) => {
                    for s in service.servers {
                        if !old.servers.iter().any(|o| o.addr == s.addr) {
                            old.servers.push(s);
                        }
                    }
                }
                Some(_) => {
                    self.conflicts.insert(key);
                }
            }
        }
        for (name, middleware) in std::mem::take(&mut routes.middlewares) {
            let key = format!("middleware `{name}`");
            self.origins
                .entry(key.clone())
                .or_default()
                .push(workload.to_string());
            match self.routes.middlewares.get(&name) {
                None => {
                    self.routes.middlewares.insert(name, middleware);
                }
                Some(old) if *old == middleware => {}
                Some(_) => {
                    self.conflicts.insert(key);
                }
            }
        }
        // Whatever else the route model holds is merged by its own rules.
        if let Err(e) = self.routes.merge(routes) {
            problems.push(error(workload, e.to_string()));
        }
    }

    /// The merged routes: conflicts dropped, routers naming a Docker service that no
    /// workload defines dropped (one naming a file's service stays for [`combine`]).
    pub fn finish(mut self, problems: &mut Vec<Problem>) -> Routes {
        for key in &self.conflicts {
            let origins = self.origins.get(key).cloned().unwrap_or_default();
            for o in &origins {
                problems.push(error(
                    o,
                    format!(
                        "{key} is defined differently by {}; it is left out",
                        origins.join(" and ")
                    ),
                ));
            }
            let name = key
                .split('`')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_default();
            if key.starts_with("router") {
                self.routes.routers.remove(&name);
            } else if key.starts_with("service") {
                self.routes.services.remove(&name);
            } else {
                self.routes.middlewares.remove(&name);
            }
        }
        let services = &self.routes.services;
        let orphans: Vec<(String, String)> = self
            .routes
            .routers
            .iter()
            .filter(|(_, r)| {
                let docker = r.service.ends_with("@docker") || r.service.ends_with("@swarm");
                docker && !services.contains_key(&r.service)
            })
            .map(|(n, r)| (n.clone(), r.service.clone()))
            .collect();
        for (name, service) in orphans {
            self.routes.routers.remove(&name);
            let key = format!("router `{name}`");
            for o in self.origins.get(&key).into_iter().flatten() {
                problems.push(error(
                    o,
                    format!("{key} names service `{service}`, which no workload defines; it is left out"),
                ));
            }
        }
        self.routes
    }
}

/// `base` (routes from a file or the cluster) with `docker`'s added: a name both
/// define stays `base`'s, and a Docker router whose service or middlewares are in
/// neither is left out; each with a message. The result validates if `base` did.
pub fn combine(base: &Routes, docker: &Routes) -> (Routes, Vec<String>) {
    let mut all = base.clone();
    let mut messages = Vec::new();
    for (name, s) in &docker.services {
        if all.services.contains_key(name) {
            messages.push(format!(
                "Docker service `{name}` is defined elsewhere too; that one is kept"
            ));
        } else {
            all.services.insert(name.clone(), s.clone());
        }
    }
    for (name, m) in &docker.middlewares {
        if all.middlewares.contains_key(name) {
            messages.push(format!(
                "Docker middleware `{name}` is defined elsewhere too; that one is kept"
            ));
        } else {
            all.middlewares.insert(name.clone(), m.clone());
        }
    }
    for (name, r) in &docker.routers {
        if all.routers.contains_key(name) {
            messages.push(format!(
                "Docker router `{name}` is defined elsewhere too; that one is kept"
            ));
        } else if !all.services.contains_key(&r.service) {
            messages.push(format!(
                "Docker router `{name}` names service `{}`, which is defined nowhere; it is left out",
                r.service
            ));
        } else if let Err(e) = all.router_middlewares(r) {
            messages.push(format!("Docker router `{name}`: {e}; it is left out"));
        } else {
            all.routers.insert(name.clone(), r.clone());
        }
    }
    let mut rest = docker.clone();
    rest.routers.clear();
    rest.services.clear();
    rest.middlewares.clear();
    if let Err(e) = all.merge(rest) {
        messages.push(format!("Docker routes: {e}"));
    }
    (all, messages)
}
