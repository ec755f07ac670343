//! Bearer tokens: `strata_<id>_<secret>`, where the id is 8 random bytes
//! and the secret 32 (256 bits), both in hex. The broker keeps the id (to
//! find the token) and the SHA-256 of the secret, never the secret: a
//! copy of the data directory does not hold a usable token. A slow
//! password hash is not needed for 256 random bits; SHA-256 makes the
//! check cheap enough to run on every request.
//!
//! Invariant: the secret is compared in constant time ([`subtle`]), and an
//! unknown id costs the same comparison against a dummy hash, so neither
//! timing nor the error tells a wrong secret from an unknown token.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::core::BrokerError;

/// Every token starts with this.
pub const PREFIX: &str = "strata_";
/// Bytes of a token id.
pub const ID_BYTES: usize = 8;
/// Bytes of a token secret.
pub const SECRET_BYTES: usize = 32;

/// A token as presented: its id and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The id part (hex).
    pub id: String,
    /// SHA-256 of the secret's bytes.
    pub hash: [u8; 32],
}

/// A fresh token: the text to show once, and what to store.
#[derive(Debug)]
pub struct Fresh {
    /// `strata_<id>_<secret>`: shown to the user once, never stored.
    pub text: String,
    /// What the broker stores.
    pub presented: Presented,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of a secret.
pub fn hash(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// `N` bytes from the operating system's random source.
pub fn random<const N: usize>() -> Result<[u8; N], BrokerError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| BrokerError::Internal(format!("no random bytes: {e}")))?;
    Ok(b)
}

/// Makes a token from the operating system's random source.
pub fn generate() -> Result<Fresh, BrokerError> {
    let id = hex(&random::<ID_BYTES>()?);
    let secret = random::<SECRET_BYTES>()?;
    Ok(Fresh {
        text: format!("{PREFIX}{id}_{}", hex(&secret)),
        presented: Presented {
            id,
            hash: hash(&secret),
        },
    })
}

/// Parses a token's text; `None` if it is not of our form (which the
/// caller reports exactly as a wrong token).
pub fn parse(text: &str) -> Option<Presented> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    unhex::<ID_BYTES>(id)?;
    let secret = unhex::<SECRET_BYTES>(secret)?;
    Some(Presented {
        id: id.to_string(),
        hash: hash(&secret),
    })
}

/// Whether a presented hash is the stored one, in constant time. With no
/// stored hash (an unknown id) it compares against zeros and fails.
pub fn matches(stored: Option<&[u8]>, presented: &[u8; 32]) -> bool {
    let dummy = [0u8; 32];
    let (stored, known) = match stored {
        Some(s) if s.len() == 32 => (s, true),
        _ => (&dummy[..], false),
    };
    bool::from(stored.ct_eq(presented)) & known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_token_parses_back_to_what_is_stored() {
        let t = generate().unwrap();
        assert!(t.text.starts_with(PREFIX));
        assert_eq!(
            t.text.len(),
            PREFIX.len() + 2 * ID_BYTES + 1 + 2 * SECRET_BYTES
        );
        let p = parse(&t.text).unwrap();
        assert_eq!(p, t.presented);
        assert!(matches(Some(&t.presented.hash), &p.hash));
        assert_ne!(generate().unwrap().text, t.text);
    }

    #[test]
    fn wrong_unknown_and_malformed_tokens_fail() {
        let t = generate().unwrap();
        let mut wrong = t.text.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        let w = parse(&wrong).unwrap();
        assert!(!matches(Some(&t.presented.hash), &w.hash));
        assert!(!matches(None, &t.presented.hash));
        assert!(
            !matches(None, &[0u8; 32]),
            "an unknown id never matches the dummy"
        );
        for bad in ["", "strata_", "strata_zz_00", "bearer", &t.text[1..]] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
