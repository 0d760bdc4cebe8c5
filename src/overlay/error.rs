//! What can go wrong between the agent's overlay duties and the data path.
//!
//! These are "this pass failed" errors: the reconciler logs them and tries again on the
//! next change or resync, and `cluster leave` reports them to the operator.

use shoal_control::ClusterError;
use shoal_dataplane::netlink::NetlinkError;
use shoal_dataplane::nft::NftError;
use shoal_dataplane::overlay::ChangeError;

/// Why one pass of an overlay duty did not finish.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// Netlink could not be opened, or the kernel's links could not be read.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// nftables refused one of shoal's tables.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// The blocking task that programs nftables panicked or was cancelled.
    #[error("programming nftables: {0}")]
    NftTask(#[from] tokio::task::JoinError),
    /// Kernel objects that could not be changed, each with the change and why.
    #[error("{}", describe_failed(.0))]
    Changes(Vec<(String, ChangeError)>),
    /// This node's WireGuard key could not be written to the data directory.
    #[error("cannot store the WireGuard key: {0}")]
    StoreKey(#[source] std::io::Error),
    /// The cluster did not take a change this duty proposed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// `change: why; change: why`.
fn describe_failed(failed: &[(String, ChangeError)]) -> String {
    failed
        .iter()
        .map(|(change, e)| format!("{change}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}
