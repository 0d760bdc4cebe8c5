//! The return path's policy routes over netlink, inside a sandbox.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{IpVersion, RouteMessageBuilder};

use super::{IpFamily, ObservedReturn, ReturnChange, RULE_PRIORITY};
use crate::netlink::{req, Netlink, NetlinkError};

/// The sandbox's return rules of `family` (those at [`RULE_PRIORITY`]) and their
/// tables' default routes.
pub async fn observe(nl: &Netlink, family: IpFamily) -> Result<ObservedReturn, NetlinkError> {
    let mut out = ObservedReturn::default();
    for msg in rules(nl, family).await? {
        let mut priority = None;
        let mut fwmark = None;
        let mut table = u32::from(msg.header.table);
        for a in &msg.attributes {
            match a {
                RuleAttribute::Priority(p) => priority = Some(*p),
                RuleAttribute::FwMark(m) => fwmark = Some(*m),
                RuleAttribute::Table(t) => table = *t,
                _ => {}
            }
        }
        if let (Some(RULE_PRIORITY), Some(mark)) = (priority, fwmark) {
            out.rules.push((mark, table));
        }
    }
    let names: Vec<(u32, String, u32)> = nl.links().await?;
    let query = table_route(family, None);
    let mut routes = nl.handle().route().get(query).execute();
    while let Some(r) = routes.try_next().await.map_err(req("dump routes"))? {
        let mut table = u32::from(r.header.table);
        let (mut via, mut oif, mut dst) = (None, None, false);
        for a in &r.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => via = Some(IpAddr::V4(*ip)),
                RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => via = Some(IpAddr::V6(*ip)),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Destination(_) => dst = true,
                _ => {}
            }
        }
        if dst || r.header.destination_prefix_length != 0 {
            continue;
        }
        if out.rules.iter().any(|(_, t)| *t == table) {
            let dev = oif.and_then(|i| names.iter().find(|l| l.0 == i).map(|l| l.1.clone()));
            out.routes.push((table, via, dev));
        }
    }
    Ok(out)
}

/// A route message of `family` in `table` (any table: a dump's query).
fn table_route(family: IpFamily, table: Option<u32>) -> RouteMessage {
    fn in_table<T>(b: RouteMessageBuilder<T>, table: Option<u32>) -> RouteMessageBuilder<T> {
        match table {
            Some(t) => b.table_id(t),
            None => b,
        }
    }
    match family {
        IpFamily::V4 => in_table(RouteMessageBuilder::<Ipv4Addr>::new(), table).build(),
        IpFamily::V6 => in_table(RouteMessageBuilder::<Ipv6Addr>::new(), table).build(),
    }
}

async fn rules(nl: &Netlink, family: IpFamily) -> Result<Vec<RuleMessage>, NetlinkError> {
    let version = match family {
        IpFamily::V4 => IpVersion::V4,
        IpFamily::V6 => IpVersion::V6,
    };
    nl.handle()
        .rule()
        .get(version)
        .execute()
        .try_collect()
        .await
        .map_err(req("dump ip rules"))
}

/// Carries out `changes` (of `family`) in order; the failures, each naming its change.
pub async fn apply(nl: &Netlink, family: IpFamily, changes: &[ReturnChange]) -> Vec<NetlinkError> {
    let mut failures = Vec::new();
    for c in changes {
        if let Err(e) = one(nl, family, c).await {
            failures.push(e);
        }
    }
    failures
}

async fn one(nl: &Netlink, family: IpFamily, change: &ReturnChange) -> Result<(), NetlinkError> {
    let h = nl.handle();
    match change {
        ReturnChange::DelRule { fwmark, table } => {
            let found = rules(nl, family).await?.into_iter().find(|m| {
                m.attributes
                    .contains(&RuleAttribute::Priority(RULE_PRIORITY))
                    && m.attributes.contains(&RuleAttribute::FwMark(*fwmark))
                    && (u32::from(m.header.table) == *table
                        || m.attributes.contains(&RuleAttribute::Table(*table)))
            });
            match found {
                Some(m) => h
                    .rule()
                    .del(m)
                    .execute()
                    .await
                    .map_err(req(format!("remove ip rule fwmark {fwmark:#x}"))),
                None => Ok(()),
            }
        }
        ReturnChange::DelRoute(table) => {
            let route = table_route(family, Some(*table));
            match h.route().del(route).execute().await {
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(()),
                r => r.map_err(req(format!("remove the default route of table {table}"))),
            }
        }
        ReturnChange::SetRoute(r) => {
            let index = nl.must_index(&r.ifname).await?;
            let route = match r.via {
                IpAddr::V4(via) => RouteMessageBuilder::<Ipv4Addr>::new()
                    .table_id(r.mark)
                    .gateway(via)
                    .output_interface(index)
                    .build(),
                IpAddr::V6(via) => RouteMessageBuilder::<Ipv6Addr>::new()
                    .table_id(r.mark)
                    .gateway(via)
                    .output_interface(index)
                    .build(),
            };
            h.route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(req(format!(
                    "route table {} via {} dev {}",
                    r.mark, r.via, r.ifname
                )))
        }
        ReturnChange::AddRule(mark) => {
            let rule = h
                .rule()
                .add()
                .fw_mark(*mark)
                .table_id(*mark)
                .priority(RULE_PRIORITY)
                .action(RuleAction::ToTable);
            let what = format!("ip rule ({family:?}) fwmark {mark:#x} lookup {mark}");
            match family {
                IpFamily::V4 => rule.v4().execute().await,
                IpFamily::V6 => rule.v6().execute().await,
            }
            .map_err(req(what))
        }
    }
}
