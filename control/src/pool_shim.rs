//! TEMPORARY stand-in for shoal_ipam::PoolConfig until the ipam crate lands.
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    pub pools: Vec<String>,
    pub mask_len: u8,
}
impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            pools: vec!["10.0.0.0/8".into()],
            mask_len: 24,
        }
    }
}
impl PoolConfig {
    pub fn new(pools: Vec<String>, mask_len: Option<u8>) -> Result<Self, String> {
        Ok(PoolConfig {
            pools,
            mask_len: mask_len.unwrap_or(24),
        })
    }
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
