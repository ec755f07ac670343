//! Security administration: users, their SCRAM credentials, bearer
//! tokens and ACLs (the
//! `strata.v1.Security` service), and [`generate_token`] for the first
//! admin's token, made before the broker first starts.

use strata_proto::v1;

use crate::client::Client;
use crate::error::{Error, Result};

pub use strata_proto::v1::{
    AclBinding, AclFilter, AclOperation, AclPermission, ListQuotasResponse, PatternType, Quota,
    QuotaRates, ResourceType, ScramCredentialInfo, ScramMechanism, Token, User, WhoAmIResponse,
};

/// Security administration over a client's connection.
#[derive(Debug, Clone)]
pub struct SecurityAdmin {
    client: Client,
}

/// A token just made: its text is shown here once.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// What the broker keeps (no secret).
    pub token: Token,
    /// `strata_<id>_<secret>`.
    pub text: String,
}

/// A new token's text, `strata_<id>_<secret>` (8 and 32 random bytes from
/// the operating system, in hex), for `--auth-bootstrap-token-file`.
pub fn generate_token() -> Result<String> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)
        .and_then(|()| getrandom::fill(&mut secret))
        .map_err(|e| Error::InvalidArgument(format!("no random bytes for a token: {e}")))?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok(format!("strata_{}_{}", hex(&id), hex(&secret)))
}

impl SecurityAdmin {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// Who this client's calls run as.
    pub async fn who_am_i(&self) -> Result<WhoAmIResponse> {
        let r = self
            .client
            .security_rpc()
            .who_am_i(v1::WhoAmIRequest {})
            .await?;
        Ok(r.into_inner())
    }

    /// Makes a user.
    pub async fn create_user(&self, name: &str) -> Result<User> {
        let r = self
            .client
            .security_rpc()
            .create_user(v1::CreateUserRequest { name: name.into() })
            .await?;
        Ok(r.into_inner().user.unwrap_or_default())
    }

    /// Deletes a user and its tokens.
    pub async fn delete_user(&self, name: &str) -> Result<User> {
        let r = self
            .client
            .security_rpc()
            .delete_user(v1::DeleteUserRequest { name: name.into() })
            .await?;
        Ok(r.into_inner().user.unwrap_or_default())
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let r = self
            .client
            .security_rpc()
            .list_users(v1::ListUsersRequest {})
            .await?;
        Ok(r.into_inner().users)
    }

    /// Sets `user`'s SCRAM credential for `mechanism` (SASL on the Kafka
    /// listener) from `password`: the salt is random and the salting
    /// (PBKDF2, `iterations` rounds) happens here, so the password never
    /// reaches the broker. Replaces the credential the user had.
    pub async fn set_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<User> {
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt)
            .map_err(|e| Error::InvalidArgument(format!("no random bytes for a salt: {e}")))?;
        let salted_password = salted_password(mechanism, password, &salt, iterations)?;
        let r = self
            .client
            .security_rpc()
            .set_scram_credential(v1::SetScramCredentialRequest {
                user: user.into(),
                mechanism: mechanism as i32,
                iterations,
                salt: salt.to_vec().into(),
                salted_password: salted_password.into(),
            })
            .await?;
        Ok(r.into_inner().user.unwrap_or_default())
    }

    /// Sets `user`'s password for SASL PLAIN on the Kafka listener (which
    /// serves PLAIN over TLS only): hashed here with Argon2id (19 MiB, 2
    /// passes, OWASP's choice) and a random salt, so the broker keeps only
    /// the hash. Replaces the password the user had.
    pub async fn set_plain_credential(&self, user: &str, password: &str) -> Result<User> {
        let argon2id_phc = plain_hash(password, 19_456, 2)?;
        let r = self
            .client
            .security_rpc()
            .set_plain_credential(v1::SetPlainCredentialRequest {
                user: user.into(),
                argon2id_phc,
            })
            .await?;
        Ok(r.into_inner().user.unwrap_or_default())
    }

    /// Deletes `user`'s PLAIN password.
    pub async fn delete_plain_credential(&self, user: &str) -> Result<User> {
        let r = self
            .client
            .security_rpc()
            .delete_plain_credential(v1::DeletePlainCredentialRequest { user: user.into() })
            .await?;
        Ok(r.into_inner().user.unwrap_or_default())
    }

    /// Deletes `user`'s SCRAM credential for `mechanism`.
    pub async fn delete_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<User> {
        let r = self
            .client
            .security_rpc()
            .delete_scram_credential(v1::DeleteScramCredentialRequest {
                user: user.into(),
                mechanism: mechanism as i32,
            })
            .await?;
        Ok(r.into_inner().user.unwrap_or_default())
    }

    /// Makes a token for `user`, valid `lifetime_ms` (0: until revoked).
    pub async fn create_token(
        &self,
        user: &str,
        description: &str,
        lifetime_ms: u64,
    ) -> Result<CreatedToken> {
        let r = self
            .client
            .security_rpc()
            .create_token(v1::CreateTokenRequest {
                user: user.into(),
                description: description.into(),
                lifetime_ms,
            })
            .await?
            .into_inner();
        Ok(CreatedToken {
            token: r.token.unwrap_or_default(),
            text: r.text,
        })
    }

    /// Revokes a token by id.
    pub async fn revoke_token(&self, id: &str) -> Result<Token> {
        let r = self
            .client
            .security_rpc()
            .revoke_token(v1::RevokeTokenRequest { id: id.into() })
            .await?;
        Ok(r.into_inner().token.unwrap_or_default())
    }

    /// Tokens of `user` (empty: of everyone).
    pub async fn list_tokens(&self, user: &str) -> Result<Vec<Token>> {
        let r = self
            .client
            .security_rpc()
            .list_tokens(v1::ListTokensRequest { user: user.into() })
            .await?;
        Ok(r.into_inner().tokens)
    }

    /// Adds ACLs; returns how many were new.
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<u32> {
        let r = self
            .client
            .security_rpc()
            .create_acls(v1::CreateAclsRequest { acls })
            .await?;
        Ok(r.into_inner().added)
    }

    /// Deletes the ACLs `filter` matches; returns them.
    pub async fn delete_acls(&self, filter: AclFilter) -> Result<Vec<AclBinding>> {
        let r = self
            .client
            .security_rpc()
            .delete_acls(v1::DeleteAclsRequest {
                filter: Some(filter),
            })
            .await?;
        Ok(r.into_inner().deleted)
    }

    /// The ACLs `filter` matches.
    pub async fn list_acls(&self, filter: AclFilter) -> Result<Vec<AclBinding>> {
        let r = self
            .client
            .security_rpc()
            .list_acls(v1::ListAclsRequest {
                filter: Some(filter),
            })
            .await?;
        Ok(r.into_inner().acls)
    }

    /// Sets `principal`'s own quotas (unset rates: the broker's defaults).
    pub async fn set_quota(&self, principal: &str, rates: QuotaRates) -> Result<()> {
        self.set_quota_of(principal, "", rates).await
    }

    /// Sets the quotas of a principal ("" for any) with a client id (""
    /// for any): Kafka's (user, client-id) quota entities.
    pub async fn set_quota_of(
        &self,
        principal: &str,
        client_id: &str,
        rates: QuotaRates,
    ) -> Result<()> {
        self.client
            .security_rpc()
            .set_quota(v1::SetQuotaRequest {
                quota: Some(Quota {
                    principal: principal.into(),
                    client_id: client_id.into(),
                    rates: Some(rates),
                }),
            })
            .await?;
        Ok(())
    }

    /// Every principal's own quotas, and the defaults.
    pub async fn list_quotas(&self) -> Result<ListQuotasResponse> {
        let r = self
            .client
            .security_rpc()
            .list_quotas(v1::ListQuotasRequest {})
            .await?;
        Ok(r.into_inner())
    }
}

/// Hi(password, salt, iterations) of RFC 5802: PBKDF2 with the
/// mechanism's HMAC, what the broker derives its keys from.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>> {
    use sha2::{Sha256, Sha512};
    let p = password.as_bytes();
    match mechanism {
        ScramMechanism::ScramSha256 => {
            Ok(pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(p, salt, iterations).to_vec())
        }
        ScramMechanism::ScramSha512 => {
            Ok(pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(p, salt, iterations).to_vec())
        }
        ScramMechanism::Unspecified => Err(Error::InvalidArgument(
            "a SCRAM mechanism: SCRAM-SHA-256 or SCRAM-SHA-512".into(),
        )),
    }
}

/// An Argon2id hash of `password` (`memory_kib`, `passes`, one lane) with
/// a random salt, as a PHC string: what the broker keeps for SASL PLAIN.
pub fn plain_hash(password: &str, memory_kib: u32, passes: u32) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let bad = |e: String| Error::InvalidArgument(format!("hashing the password: {e}"));
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| bad(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| bad(e.to_string()))?;
    let params =
        argon2::Params::new(memory_kib, passes, 1, None).map_err(|e| bad(e.to_string()))?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| bad(e.to_string()))
}
