//! nftables over netlink, without libnftnl or the `nft` tool.
//!
//! ```text
//!  plan ─▶ model::Table ─▶ apply::ensure_table ─ read back (decode) ─ same? done
//!                                              └─ differs ─▶ encode::Batch ─▶ kernel (one transaction)
//! ```
//! - [`model`]: tables, chains, rules, maps, timeout policies, expressions.
//! - [`exprs`]: the expressions rules are built from (`iifname`, `dport`, verdicts, ...).
//! - `encode` / `decode`: the model to netlink messages and back.
//! - `apply`: batches sent, tables read back and compared.
//! - [`events`]: what the kernel announces to listeners of its changes, read back.
//! - `consts`: the kernel's numbers.

mod apply;
mod consts;
mod decode;
mod encode;
pub mod events;
pub mod exprs;
pub mod model;

pub use apply::{ensure_table, read_table, remove_table, table_exists, KernelTable, NftError};
pub use consts::{
    CTA_TIMEOUT_TCP_ESTABLISHED, CTA_TIMEOUT_TCP_RETRANS, CTA_TIMEOUT_TCP_SYN_SENT,
    CTA_TIMEOUT_TCP_UNACK, CTA_TIMEOUT_UDP_REPLIED, CTA_TIMEOUT_UDP_UNREPLIED,
};
pub use model::{
    BaseChain, Chain, ChainType, CmpOp, CtTimeoutPolicy, Expr, Family, Hook, Map, MetaKey,
    PayloadBase, Rule, Table, Verdict,
};
