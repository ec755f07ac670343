//! SCRAM credentials in the security state: set (from a salted password,
//! as Kafka's AlterUserScramCredentials sends it), delete, and look up for
//! a login. A child of [`super`] so it shares the state's one writer.
//!
//! Invariant: a user has at most one credential per mechanism, and
//! deleting the user deletes them (a user made again under the name has
//! none, like its tokens).

use super::{Inner, Security, UserInfo, user_info};
use crate::core::BrokerError;
use crate::core::security::SecurityError;
use crate::core::security::scram::{Credential, ITERATIONS_MAX, ITERATIONS_MIN, Mechanism};
use crate::core::security::store::ScramValue;

/// The longest salt a credential may have (scram_salt_bytes_max).
pub const SALT_BYTES_MAX: usize = 64;

/// The secret decoys derive from before any credential made one.
fn process_secret() -> &'static [u8] {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| {
        let mut b = [0u8; 32];
        // Without a random source the broker cannot make tokens either;
        // a fixed decoy secret only lets unknown users be told apart.
        let _ = getrandom::fill(&mut b);
        b
    })
}

fn check(salt: &[u8], iterations: u32, salted: &[u8], m: Mechanism) -> Result<(), BrokerError> {
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        return Err(BrokerError::InvalidArgument(format!(
            "SCRAM iterations {iterations} outside {ITERATIONS_MIN}..={ITERATIONS_MAX} \
             (scram_iterations_min, scram_iterations_max)"
        )));
    }
    if salt.is_empty() || salt.len() > SALT_BYTES_MAX {
        return Err(BrokerError::InvalidArgument(format!(
            "a SCRAM salt of {} bytes: it must be 1 to {SALT_BYTES_MAX} (scram_salt_bytes_max)",
            salt.len()
        )));
    }
    if salted.len() != m.hash_bytes() {
        return Err(BrokerError::InvalidArgument(format!(
            "a {} salted password is {} bytes, not {}",
            m.name(),
            m.hash_bytes(),
            salted.len()
        )));
    }
    Ok(())
}

impl Inner {
    fn scram_of(&self, user: &str, m: Mechanism) -> Option<Credential> {
        let u = self.user_named(user)?;
        let c = u.scram.iter().find(|c| c.mechanism == m.number())?;
        Credential::try_from(c).ok()
    }
}

impl Security {
    /// Sets `user`'s credential for `mechanism` from its salted password
    /// (Hi(password, salt, iterations), computed by the client), replacing
    /// the one it had.
    pub fn set_scram(
        &self,
        user: &str,
        mechanism: Mechanism,
        salt: &[u8],
        iterations: u32,
        salted_password: &[u8],
    ) -> Result<UserInfo, BrokerError> {
        check(salt, iterations, salted_password, mechanism)?;
        let c = Credential::from_salted(mechanism, salt.to_vec(), iterations, salted_password);
        let secret = crate::core::security::token::random::<32>()?;
        self.mutate_user(user, |s, i| {
            if s.scram_secret.is_empty() {
                s.scram_secret = secret.to_vec();
            }
            let u = &mut s.users[i];
            u.scram.retain(|v| v.mechanism != mechanism.number());
            u.scram.push(ScramValue::from(&c));
            Ok(user_info(u))
        })
    }

    /// Deletes `user`'s credential for `mechanism`.
    pub fn delete_scram(&self, user: &str, mechanism: Mechanism) -> Result<UserInfo, BrokerError> {
        let u = self.mutate_user(user, |s, i| {
            let u = &mut s.users[i];
            let before = u.scram.len();
            u.scram.retain(|v| v.mechanism != mechanism.number());
            if u.scram.len() == before {
                return Err(SecurityError::UnknownCredential(format!(
                    "user {user:?} has no {} credential",
                    mechanism.name()
                ))
                .into());
            }
            Ok(user_info(u))
        })?;
        self.revoked();
        Ok(u)
    }

    /// `user`'s credential for `mechanism`, and its user id, for a login.
    pub fn scram_credential(&self, user: &str, m: Mechanism) -> Option<(Credential, u64)> {
        let inner = self.read();
        let c = inner.scram_of(user, m)?;
        Some((c, inner.user_named(user)?.id))
    }

    /// The secret unknown users' decoy credentials derive from.
    pub fn scram_secret(&self) -> Vec<u8> {
        let inner = self.read();
        if inner.state.scram_secret.is_empty() {
            process_secret().to_vec()
        } else {
            inner.state.scram_secret.clone()
        }
    }

    /// Whether the user with id `id` still exists (a SASL session holds
    /// only while its user does).
    pub fn user_exists(&self, id: u64) -> bool {
        self.read().users.contains_key(&id)
    }
}
