//! rtnetlink in any namespace: the socket is opened on a thread inside the target
//! namespace and stays bound to it; the connection is driven by the caller's runtime.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth};

/// A netlink failure, naming what was being done.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened.
    #[error("netlink: cannot open a socket: {0}")]
    Open(#[from] io::Error),
    /// The kernel refused a request.
    #[error("netlink: {what}: {source}")]
    Request {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
    /// A link that should exist does not.
    #[error("netlink: no link named {0}")]
    NoSuchLink(String),
}

/// A route-netlink connection bound to one namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

fn req(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

impl Netlink {
    /// A connection in the caller's own namespace. Needs a tokio runtime.
    pub fn current() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// A connection inside namespace `ns`. Needs a tokio runtime.
    pub fn in_namespace(ns: &File) -> Result<Netlink, NetlinkError> {
        let rt = tokio::runtime::Handle::current();
        let spawner = rt.clone();
        let handle = crate::netns::run_in(ns, move || -> io::Result<Handle> {
            let _guard = spawner.enter();
            let (conn, handle, _) = rtnetlink::new_connection()?;
            spawner.spawn(conn);
            Ok(handle)
        })??;
        drop(rt);
        Ok(Netlink { handle })
    }

    /// The index of link `name`, if it exists.
    pub async fn index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(Some(link.header.index)),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(req(format!("look up link {name}"))(e)),
        }
    }

    /// The index of link `name`, which must exist.
    pub async fn must_index(&self, name: &str) -> Result<u32, NetlinkError> {
        self.index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoSuchLink(name.to_string()))
    }

    /// Creates a veth pair.
    pub async fn add_veth(&self, name: &str, peer: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .add(LinkVeth::new(name, peer).build())
            .execute()
            .await
            .map_err(req(format!("create veth {name}/{peer}")))
    }

    /// Creates a bridge.
    pub async fn add_bridge(&self, name: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(req(format!("create bridge {name}")))
    }

    /// Brings link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(req(format!("bring link {index} up")))
    }

    /// Enslaves link `index` to bridge `master`.
    pub async fn set_master(&self, index: u32, master: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).controller(master).build())
            .execute()
            .await
            .map_err(req(format!("attach link {index} to bridge {master}")))
    }

    /// Renames link `index` (it must be down).
    pub async fn rename(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(name.to_string())
                    .build(),
            )
            .execute()
            .await
            .map_err(req(format!("rename link {index} to {name}")))
    }

    /// Moves link `index` into namespace `ns`.
    pub async fn move_to(&self, index: u32, ns: &File) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .setns_by_fd(ns.as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .map_err(req(format!("move link {index} to another namespace")))
    }

    /// Adds `addr/prefix` to link `index`.
    pub async fn add_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        self.handle
            .address()
            .add(index, addr, prefix)
            .execute()
            .await
            .map_err(req(format!("add address {addr}/{prefix} to link {index}")))
    }

    /// Deletes link `index`.
    pub async fn delete(&self, index: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(req(format!("delete link {index}")))
    }

    /// The raw rtnetlink handle, for requests this wrapper does not cover.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}
