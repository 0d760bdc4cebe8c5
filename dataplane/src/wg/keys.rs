//! WireGuard keys: X25519 key pairs, base64 as `wg` prints them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use boringtun::x25519::{PublicKey, StaticSecret};

/// The length of a WireGuard key in bytes.
const KEY_LEN: usize = 32;

/// Why a base64 string is not a WireGuard key.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not base64.
    #[error("not base64: {0}")]
    NotBase64(#[from] base64::DecodeError),
    /// It decodes to the wrong number of bytes.
    #[error("a WireGuard key has {KEY_LEN} bytes, not {0}")]
    WrongLength(usize),
}

/// A node's key pair.
#[derive(Clone)]
pub struct KeyPair {
    /// The private key.
    pub private: StaticSecret,
    /// The public key.
    pub public: PublicKey,
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> KeyPair {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        let private = StaticSecret::from(bytes);
        let public = PublicKey::from(&private);
        KeyPair { private, public }
    }

    /// The key pair of a base64 private key.
    pub fn from_private_base64(s: &str) -> Result<KeyPair, KeyError> {
        let bytes = decode32(s)?;
        let private = StaticSecret::from(bytes);
        let public = PublicKey::from(&private);
        Ok(KeyPair { private, public })
    }

    /// The private key, base64.
    pub fn private_base64(&self) -> String {
        STANDARD.encode(self.private.to_bytes())
    }

    /// The public key, base64.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.public.as_bytes())
    }
}

/// Decodes a base64 public key.
pub fn public_from_base64(s: &str) -> Result<PublicKey, KeyError> {
    decode32(s).map(PublicKey::from)
}

fn decode32(s: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let bytes = STANDARD.decode(s.trim())?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeyError::WrongLength(b.len()))
}

fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok();
    assert!(ok, "/dev/urandom must be readable to make keys");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_base64() {
        let k = KeyPair::generate();
        let back = KeyPair::from_private_base64(&k.private_base64()).unwrap();
        assert_eq!(back.public_base64(), k.public_base64());
        assert_eq!(k.public_base64().len(), 44);
        assert_eq!(
            public_from_base64(&k.public_base64()).unwrap().as_bytes(),
            k.public.as_bytes()
        );
        assert_eq!(
            public_from_base64("AAAA").err(),
            Some(KeyError::WrongLength(3))
        );
        assert!(matches!(
            KeyPair::from_private_base64("not base64!"),
            Err(KeyError::NotBase64(_))
        ));
    }
}
