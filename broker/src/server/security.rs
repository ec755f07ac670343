//! The `strata.v1.Security` service: users, tokens and ACLs. Changes are
//! fsynced before they answer and take effect at once; each is an audit
//! line (never with a secret).

use std::sync::Arc;

use strata_proto::v1::{self, security_server};
use tonic::{Request, Response, Status};

use super::auth::{AUDIT, caller, now_ms};
use crate::core::BrokerError;
use crate::core::security::scram::Mechanism;
use crate::core::security::{
    Acl, AclFilter, Operation, PatternType, Permission, QuotaRates, Resource, ResourceType,
    Security, TokenInfo, UserInfo,
};

/// The Security service.
#[derive(Debug, Clone)]
pub struct SecurityService {
    security: Arc<Security>,
}

impl SecurityService {
    /// A service over `security`.
    pub fn new(security: Arc<Security>) -> Self {
        Self { security }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Security) -> crate::core::error::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        super::blocking(&self.security, f).await
    }
}

fn bad(what: &str, n: i32) -> BrokerError {
    BrokerError::InvalidArgument(format!("{what} {n} is not one of the known values"))
}

fn resource_type(n: i32) -> Result<Option<ResourceType>, BrokerError> {
    use v1::ResourceType as V;
    Ok(match V::try_from(n).map_err(|_| bad("resource_type", n))? {
        V::Unspecified => None,
        V::Topic => Some(ResourceType::Topic),
        V::Group => Some(ResourceType::Group),
        V::Cluster => Some(ResourceType::Cluster),
        V::TransactionalId => Some(ResourceType::TransactionalId),
    })
}

fn pattern_type(n: i32) -> Result<Option<PatternType>, BrokerError> {
    use v1::PatternType as V;
    Ok(match V::try_from(n).map_err(|_| bad("pattern_type", n))? {
        V::Unspecified => None,
        V::Literal => Some(PatternType::Literal),
        V::Prefixed => Some(PatternType::Prefixed),
    })
}

fn operation(n: i32) -> Result<Option<Operation>, BrokerError> {
    use v1::AclOperation as V;
    Ok(match V::try_from(n).map_err(|_| bad("operation", n))? {
        V::Unspecified => None,
        V::All => Some(Operation::All),
        V::Read => Some(Operation::Read),
        V::Write => Some(Operation::Write),
        V::Create => Some(Operation::Create),
        V::Delete => Some(Operation::Delete),
        V::Alter => Some(Operation::Alter),
        V::Describe => Some(Operation::Describe),
        V::DescribeConfigs => Some(Operation::DescribeConfigs),
        V::AlterConfigs => Some(Operation::AlterConfigs),
    })
}

fn permission(n: i32) -> Result<Option<Permission>, BrokerError> {
    use v1::AclPermission as V;
    Ok(match V::try_from(n).map_err(|_| bad("permission", n))? {
        V::Unspecified => None,
        V::Allow => Some(Permission::Allow),
        V::Deny => Some(Permission::Deny),
    })
}

fn required<T>(v: Option<T>, what: &str) -> Result<T, BrokerError> {
    v.ok_or_else(|| BrokerError::InvalidArgument(format!("an ACL needs its {what}")))
}

fn acl_of(b: v1::AclBinding) -> Result<Acl, BrokerError> {
    Ok(Acl {
        resource_type: required(resource_type(b.resource_type)?, "resource_type")?,
        pattern_type: required(pattern_type(b.pattern_type)?, "pattern_type")?,
        operation: required(operation(b.operation)?, "operation")?,
        permission: required(permission(b.permission)?, "permission")?,
        principal: b.principal,
        resource_name: b.resource_name,
    })
}

fn binding(a: &Acl) -> v1::AclBinding {
    v1::AclBinding {
        principal: a.principal.clone(),
        resource_type: a.resource_type as i32,
        pattern_type: a.pattern_type as i32,
        resource_name: a.resource_name.clone(),
        operation: a.operation as i32,
        permission: a.permission as i32,
    }
}

fn filter_of(f: Option<v1::AclFilter>) -> Result<AclFilter, BrokerError> {
    let f = f.unwrap_or_default();
    let text = |s: String| (!s.is_empty()).then_some(s);
    Ok(AclFilter {
        principal: text(f.principal),
        resource_type: resource_type(f.resource_type)?,
        pattern_type: pattern_type(f.pattern_type)?,
        resource_name: text(f.resource_name),
        operation: operation(f.operation)?,
        permission: permission(f.permission)?,
    })
}

fn rates(r: QuotaRates) -> v1::QuotaRates {
    v1::QuotaRates {
        produce_bytes_per_sec: r.produce_bytes_per_sec,
        fetch_bytes_per_sec: r.fetch_bytes_per_sec,
        requests_per_sec: r.requests_per_sec,
    }
}

fn user(u: UserInfo) -> v1::User {
    v1::User {
        id: u.id,
        name: u.name,
        created_ms: u.created_ms,
        bootstrap_admin: u.bootstrap_admin,
        plain_credential: u.plain,
        scram_credentials: u
            .scram
            .into_iter()
            .map(|(m, iterations)| v1::ScramCredentialInfo {
                mechanism: m.number() as i32,
                iterations,
            })
            .collect(),
    }
}

fn mechanism(n: i32) -> Result<Mechanism, Status> {
    u32::try_from(n)
        .ok()
        .and_then(Mechanism::from_number)
        .ok_or_else(|| {
            super::status::to_status(BrokerError::InvalidArgument(format!(
                "mechanism {n} is not SCRAM-SHA-256 (1) or SCRAM-SHA-512 (2)"
            )))
        })
}

fn token(t: TokenInfo) -> v1::Token {
    v1::Token {
        id: t.id,
        user: t.user,
        description: t.description,
        created_ms: t.created_ms,
        expires_ms: t.expires_ms.unwrap_or(0),
    }
}

/// Checks `op` on the Cluster and returns the caller's principal's name.
fn cluster<T>(req: &Request<T>, op: Operation) -> Result<String, Status> {
    let c = caller(req)?;
    c.authorize(op, Resource::cluster())?;
    Ok(c.principal().to_string())
}

#[tonic::async_trait]
impl security_server::Security for SecurityService {
    async fn who_am_i(
        &self,
        req: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        let c = caller(&req)?;
        let (token_id, expires_ms) = c.token();
        Ok(Response::new(v1::WhoAmIResponse {
            principal: c.principal().to_string(),
            super_user: c.is_super_user(),
            token_id: token_id.unwrap_or_default(),
            token_expires_ms: expires_ms.unwrap_or(0),
        }))
    }

    async fn create_user(
        &self,
        req: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::CreateUserResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let name = req.into_inner().name;
        let u = self
            .blocking(move |s| s.create_user(&name, now_ms()))
            .await?;
        tracing::info!(target: AUDIT, event = "user_created", by, user = %u.name, id = u.id);
        Ok(Response::new(v1::CreateUserResponse {
            user: Some(user(u)),
        }))
    }

    async fn delete_user(
        &self,
        req: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let name = req.into_inner().name;
        let u = self.blocking(move |s| s.delete_user(&name)).await?;
        tracing::info!(target: AUDIT, event = "user_deleted", by, user = %u.name, id = u.id);
        Ok(Response::new(v1::DeleteUserResponse {
            user: Some(user(u)),
        }))
    }

    async fn list_users(
        &self,
        req: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        cluster(&req, Operation::Describe)?;
        let users = self.security.list_users().into_iter().map(user).collect();
        Ok(Response::new(v1::ListUsersResponse { users }))
    }

    async fn set_scram_credential(
        &self,
        req: Request<v1::SetScramCredentialRequest>,
    ) -> Result<Response<v1::SetScramCredentialResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let r = req.into_inner();
        let m = mechanism(r.mechanism)?;
        let u = self
            .blocking(move |s| s.set_scram(&r.user, m, &r.salt, r.iterations, &r.salted_password))
            .await?;
        tracing::info!(target: AUDIT, event = "scram_credential_set", by, user = %u.name, mechanism = m.name());
        Ok(Response::new(v1::SetScramCredentialResponse {
            user: Some(user(u)),
        }))
    }

    async fn delete_scram_credential(
        &self,
        req: Request<v1::DeleteScramCredentialRequest>,
    ) -> Result<Response<v1::DeleteScramCredentialResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let r = req.into_inner();
        let m = mechanism(r.mechanism)?;
        let u = self.blocking(move |s| s.delete_scram(&r.user, m)).await?;
        tracing::info!(target: AUDIT, event = "scram_credential_deleted", by, user = %u.name, mechanism = m.name());
        Ok(Response::new(v1::DeleteScramCredentialResponse {
            user: Some(user(u)),
        }))
    }

    async fn set_plain_credential(
        &self,
        req: Request<v1::SetPlainCredentialRequest>,
    ) -> Result<Response<v1::SetPlainCredentialResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let r = req.into_inner();
        let u = self
            .blocking(move |s| s.set_plain(&r.user, &r.argon2id_phc))
            .await?;
        tracing::info!(target: AUDIT, event = "plain_credential_set", by, user = %u.name);
        Ok(Response::new(v1::SetPlainCredentialResponse {
            user: Some(user(u)),
        }))
    }

    async fn delete_plain_credential(
        &self,
        req: Request<v1::DeletePlainCredentialRequest>,
    ) -> Result<Response<v1::DeletePlainCredentialResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let name = req.into_inner().user;
        let u = self.blocking(move |s| s.delete_plain(&name)).await?;
        tracing::info!(target: AUDIT, event = "plain_credential_deleted", by, user = %u.name);
        Ok(Response::new(v1::DeletePlainCredentialResponse {
            user: Some(user(u)),
        }))
    }

    async fn create_token(
        &self,
        req: Request<v1::CreateTokenRequest>,
    ) -> Result<Response<v1::CreateTokenResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let r = req.into_inner();
        let lifetime = (r.lifetime_ms > 0).then_some(r.lifetime_ms);
        let (t, text) = self
            .blocking(move |s| s.create_token(&r.user, &r.description, lifetime, now_ms()))
            .await?;
        tracing::info!(target: AUDIT, event = "token_created", by, user = %t.user, token = %t.id, expires_ms = ?t.expires_ms);
        Ok(Response::new(v1::CreateTokenResponse {
            token: Some(token(t)),
            text,
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let id = req.into_inner().id;
        let t = self.blocking(move |s| s.revoke_token(&id)).await?;
        tracing::info!(target: AUDIT, event = "token_revoked", by, user = %t.user, token = %t.id);
        Ok(Response::new(v1::RevokeTokenResponse {
            token: Some(token(t)),
        }))
    }

    async fn list_tokens(
        &self,
        req: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        cluster(&req, Operation::Describe)?;
        let u = req.into_inner().user;
        let tokens = self
            .security
            .list_tokens((!u.is_empty()).then_some(u.as_str()))
            .into_iter()
            .map(token)
            .collect();
        Ok(Response::new(v1::ListTokensResponse { tokens }))
    }

    async fn create_acls(
        &self,
        req: Request<v1::CreateAclsRequest>,
    ) -> Result<Response<v1::CreateAclsResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let acls = req
            .into_inner()
            .acls
            .into_iter()
            .map(acl_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(super::status::to_status)?;
        let logged = acls.clone();
        let added = self.blocking(move |s| s.add_acls(&acls)).await?;
        for a in &logged {
            tracing::info!(target: AUDIT, event = "acl_created", by, acl = ?a);
        }
        Ok(Response::new(v1::CreateAclsResponse {
            added: added as u32,
        }))
    }

    async fn delete_acls(
        &self,
        req: Request<v1::DeleteAclsRequest>,
    ) -> Result<Response<v1::DeleteAclsResponse>, Status> {
        let by = cluster(&req, Operation::Alter)?;
        let filter = filter_of(req.into_inner().filter).map_err(super::status::to_status)?;
        let gone = self.blocking(move |s| s.delete_acls(&filter)).await?;
        for a in &gone {
            tracing::info!(target: AUDIT, event = "acl_deleted", by, acl = ?a);
        }
        Ok(Response::new(v1::DeleteAclsResponse {
            deleted: gone.iter().map(binding).collect(),
        }))
    }

    async fn list_acls(
        &self,
        req: Request<v1::ListAclsRequest>,
    ) -> Result<Response<v1::ListAclsResponse>, Status> {
        cluster(&req, Operation::Describe)?;
        let filter = filter_of(req.into_inner().filter).map_err(super::status::to_status)?;
        let acls = self
            .security
            .list_acls(&filter)
            .iter()
            .map(binding)
            .collect();
        Ok(Response::new(v1::ListAclsResponse { acls }))
    }

    async fn set_quota(
        &self,
        req: Request<v1::SetQuotaRequest>,
    ) -> Result<Response<v1::SetQuotaResponse>, Status> {
        let by = cluster(&req, Operation::AlterConfigs)?;
        let q = req.into_inner().quota.unwrap_or_default();
        let r = q.rates.unwrap_or_default();
        let set = QuotaRates {
            produce_bytes_per_sec: r.produce_bytes_per_sec,
            fetch_bytes_per_sec: r.fetch_bytes_per_sec,
            requests_per_sec: r.requests_per_sec,
        };
        let (principal, client_id) = (q.principal.clone(), q.client_id.clone());
        self.blocking(move |s| s.set_quota(&principal, &client_id, set))
            .await?;
        tracing::info!(target: AUDIT, event = "quota_set", by, principal = %q.principal, client_id = %q.client_id, rates = ?set);
        Ok(Response::new(v1::SetQuotaResponse {}))
    }

    async fn list_quotas(
        &self,
        req: Request<v1::ListQuotasRequest>,
    ) -> Result<Response<v1::ListQuotasResponse>, Status> {
        cluster(&req, Operation::DescribeConfigs)?;
        let (own, defaults) = self.security.list_quotas();
        Ok(Response::new(v1::ListQuotasResponse {
            quotas: own
                .into_iter()
                .map(|(principal, client_id, r)| v1::Quota {
                    principal,
                    client_id,
                    rates: Some(rates(r)),
                })
                .collect(),
            defaults: Some(rates(defaults)),
        }))
    }
}
