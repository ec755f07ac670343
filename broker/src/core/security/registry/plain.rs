//! SASL PLAIN passwords in the security state: an Argon2id hash per user
//! (a PHC string the client makes), its bounds, and the check a login
//! makes. A child of [`super`] so it shares the state's one writer.
//!
//! A login checks an unknown user's password against a decoy hash of the
//! default cost, so it takes as long and fails alike.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params};

use super::{Security, UserInfo, user_info};
use crate::core::BrokerError;
use crate::core::security::SecurityError;

/// Bounds on a stored hash's cost: memory (plain_argon2_memory_kib_min,
/// _max; OWASP's least is 7 MiB with 5 passes), passes
/// (plain_argon2_passes_max) and lanes (plain_argon2_lanes_max).
pub const MEMORY_KIB_MIN: u32 = 7168;
/// See [`MEMORY_KIB_MIN`].
pub const MEMORY_KIB_MAX: u32 = 262_144;
/// See [`MEMORY_KIB_MIN`].
pub const PASSES_MAX: u32 = 10;
/// See [`MEMORY_KIB_MIN`].
pub const LANES_MAX: u32 = 4;
/// The longest PLAIN password read (plain_password_bytes_max).
pub const PASSWORD_BYTES_MAX: usize = 1024;

fn bad(why: String) -> BrokerError {
    BrokerError::InvalidArgument(format!("argon2id_phc: {why}"))
}

/// Checks a PHC string: Argon2id, version 19, cost within bounds.
fn check(phc: &str) -> Result<(), BrokerError> {
    let h = PasswordHash::new(phc).map_err(|e| bad(format!("not a PHC string ({e})")))?;
    if h.algorithm != Algorithm::Argon2id.ident() {
        return Err(bad(format!("{} is not argon2id", h.algorithm)));
    }
    let p = Params::try_from(&h).map_err(|e| bad(format!("bad parameters ({e})")))?;
    if !(MEMORY_KIB_MIN..=MEMORY_KIB_MAX).contains(&p.m_cost()) {
        return Err(bad(format!(
            "memory {} KiB outside {MEMORY_KIB_MIN}..={MEMORY_KIB_MAX} \
             (plain_argon2_memory_kib_min, plain_argon2_memory_kib_max)",
            p.m_cost()
        )));
    }
    if p.t_cost() > PASSES_MAX || p.p_cost() > LANES_MAX {
        return Err(bad(format!(
            "{} passes and {} lanes: at most {PASSES_MAX} (plain_argon2_passes_max) \
             and {LANES_MAX} (plain_argon2_lanes_max)",
            p.t_cost(),
            p.p_cost()
        )));
    }
    if h.hash.is_none_or(|o| o.len() < 16) {
        return Err(bad("a hash of at least 16 bytes".into()));
    }
    Ok(())
}

/// What an unknown user's password is checked against: a hash of a random
/// password at the client's default cost, made once.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let mut pw = [0u8; 32];
        let mut salt = [0u8; 16];
        let _ = getrandom::fill(&mut pw).and_then(|()| getrandom::fill(&mut salt));
        let salt = SaltString::encode_b64(&salt).expect("16 bytes encode");
        let params = Params::new(19_456, 2, 1, None).expect("valid parameters");
        Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(&pw, &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

impl Security {
    /// Sets `user`'s PLAIN password hash, replacing the one it had.
    pub fn set_plain(&self, user: &str, phc: &str) -> Result<UserInfo, BrokerError> {
        check(phc)?;
        self.mutate_user(user, |s, i| {
            let u = &mut s.users[i];
            u.plain_hash = phc.to_string();
            Ok(user_info(u))
        })
    }

    /// Deletes `user`'s PLAIN password.
    pub fn delete_plain(&self, user: &str) -> Result<UserInfo, BrokerError> {
        let u = self.mutate_user(user, |s, i| {
            let u = &mut s.users[i];
            if u.plain_hash.is_empty() {
                return Err(SecurityError::UnknownCredential(format!(
                    "user {user:?} has no PLAIN password"
                ))
                .into());
            }
            u.plain_hash.clear();
            Ok(user_info(u))
        })?;
        self.revoked();
        Ok(u)
    }

    /// A PLAIN login: the user's id if `password` is its password. Slow on
    /// purpose (Argon2id): run it on a blocking thread. An unknown user
    /// costs the same as a wrong password.
    pub fn check_plain(&self, user: &str, password: &[u8]) -> Option<u64> {
        let (phc, id) = {
            let inner = self.read();
            match inner.user_named(user).filter(|u| !u.plain_hash.is_empty()) {
                Some(u) => (u.plain_hash.clone(), Some(u.id)),
                None => (decoy().to_string(), None),
            }
        };
        let hash = PasswordHash::new(&phc).ok()?;
        let ok = password.len() <= PASSWORD_BYTES_MAX
            && Argon2::default().verify_password(password, &hash).is_ok();
        id.filter(|_| ok)
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, SaltString};

    use super::*;

    fn phc(m: u32, t: u32, p: u32) -> String {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let params = Params::new(m, t, p, None).unwrap();
        Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn stored_hashes_are_argon2id_within_their_bounds() {
        assert!(check(&phc(7168, 1, 1)).is_ok());
        let low = check(&phc(4096, 1, 1)).unwrap_err().to_string();
        assert!(low.contains("plain_argon2_memory_kib_min"), "{low}");
        let passes = check(&phc(7168, 11, 1)).unwrap_err().to_string();
        assert!(passes.contains("plain_argon2_passes_max"), "{passes}");
        let argon2i = phc(7168, 1, 1).replace("argon2id", "argon2i");
        assert!(
            check(&argon2i)
                .unwrap_err()
                .to_string()
                .contains("not argon2id")
        );
        assert!(
            check("password123")
                .unwrap_err()
                .to_string()
                .contains("PHC")
        );
    }
}
