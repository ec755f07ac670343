//! Users, tokens and ACLs in memory, over [`store`]: every change is
//! written to disk first and takes effect at once after, for every request
//! that starts from then on. Ending a token (revoke, expiry, its user
//! deleted) also bumps [`Security::revocations`], so open streams check
//! their session again and end.

mod plain;
mod quotas;
mod scram;

pub use quotas::CLIENT_ID_BYTES_MAX;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::acl::{Acl, Acls, Decision, Operation, Resource};
use super::principal::{Principal, check_name};
use super::quota::{QuotaRates, Quotas};
use super::scram::Mechanism;
use super::store::{self, StateValue, TokenValue, UserValue};
use super::{SecurityError, token};
use crate::core::BrokerError;
use crate::storage::vfs::Vfs;

/// Bounds on the security state (each named in the error when hit).
#[derive(Debug, Clone, Copy)]
pub struct SecurityLimits {
    /// `security_users_max`.
    pub users_max: usize,
    /// `security_tokens_max`, over all users.
    pub tokens_max: usize,
    /// `security_acls_max`.
    pub acls_max: usize,
    /// Quotas of a principal without its own (`--quota-*`).
    pub default_quotas: QuotaRates,
    /// How much of its rate a quota's bucket holds (`quota_window_ms`).
    pub quota_window_ms: u64,
}

impl Default for SecurityLimits {
    fn default() -> Self {
        Self {
            users_max: 10_000,
            tokens_max: 10_000,
            acls_max: 10_000,
            default_quotas: QuotaRates::default(),
            quota_window_ms: 1_000,
        }
    }
}

/// Who a call runs as, and what its authentication rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The principal.
    pub principal: Principal,
    /// The token it presented, if any (checked again on open streams).
    pub token_id: Option<String>,
    /// When that token expires.
    pub expires_ms: Option<u64>,
}

/// A user, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Never reused.
    pub id: u64,
    /// The name (`User:<name>` is its principal).
    pub name: String,
    /// When it was made.
    pub created_ms: u64,
    /// The first admin (always a super user).
    pub bootstrap_admin: bool,
    /// Its SCRAM credentials: mechanism and iterations.
    pub scram: Vec<(Mechanism, u32)>,
    /// Whether it has a PLAIN password.
    pub plain: bool,
}

/// A token, as the admin API shows it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The id part of the token's text.
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// What it is for.
    pub description: String,
    /// When it was made.
    pub created_ms: u64,
    /// When it stops working.
    pub expires_ms: Option<u64>,
}

/// Which ACLs a list or delete means: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    /// The principal, exactly.
    pub principal: Option<String>,
    /// The resource type.
    pub resource_type: Option<super::ResourceType>,
    /// The pattern type.
    pub pattern_type: Option<super::PatternType>,
    /// The resource name or prefix, exactly.
    pub resource_name: Option<String>,
    /// The operation.
    pub operation: Option<Operation>,
    /// The permission.
    pub permission: Option<super::Permission>,
}

impl AclFilter {
    fn matches(&self, a: &Acl) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == a.principal)
            && self.resource_type.is_none_or(|t| t == a.resource_type)
            && self.pattern_type.is_none_or(|t| t == a.pattern_type)
            && self
                .resource_name
                .as_ref()
                .is_none_or(|n| *n == a.resource_name)
            && self.operation.is_none_or(|o| o == a.operation)
            && self.permission.is_none_or(|p| p == a.permission)
    }
}

/// The state and what is derived from it for fast checks.
#[derive(Debug)]
struct Inner {
    state: StateValue,
    acls: Acls,
    tokens: HashMap<String, usize>,
    users: HashMap<u64, usize>,
}

impl Inner {
    fn new(state: StateValue, config_super_users: &[Principal]) -> Self {
        let mut supers = config_super_users.to_vec();
        supers.extend(
            state
                .users
                .iter()
                .filter(|u| u.bootstrap_admin)
                .map(|u| Principal::user(&u.name)),
        );
        let acls = state
            .acls
            .iter()
            .filter_map(|a| Acl::try_from(a).ok())
            .collect();
        let tokens = state
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let users = state
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id, i))
            .collect();
        Self {
            acls: Acls::new(acls, supers),
            tokens,
            users,
            state,
        }
    }

    fn user_named(&self, name: &str) -> Option<&UserValue> {
        self.state.users.iter().find(|u| u.name == name)
    }

    fn user_of(&self, t: &TokenValue) -> Option<&UserValue> {
        self.users.get(&t.user_id).map(|&i| &self.state.users[i])
    }

    fn token_info(&self, t: &TokenValue) -> TokenInfo {
        TokenInfo {
            id: t.id.clone(),
            user: self.user_of(t).map_or_else(String::new, |u| u.name.clone()),
            description: t.description.clone(),
            created_ms: t.created_ms,
            expires_ms: t.expires_ms,
        }
    }
}

fn user_info(u: &UserValue) -> UserInfo {
    UserInfo {
        id: u.id,
        name: u.name.clone(),
        created_ms: u.created_ms,
        bootstrap_admin: u.bootstrap_admin,
        scram: u
            .scram
            .iter()
            .filter_map(|c| Mechanism::from_number(c.mechanism).map(|m| (m, c.iterations)))
            .collect(),
        plain: !u.plain_hash.is_empty(),
    }
}

fn full(limit: &'static str, max: usize, what: String) -> BrokerError {
    BrokerError::LimitExceeded {
        limit,
        max: max as u64,
        what,
    }
}

/// Users, tokens and ACLs: the authenticator and the authorizer.
pub struct Security {
    fs: Arc<dyn Vfs>,
    dir: PathBuf,
    limits: SecurityLimits,
    config_super_users: Vec<Principal>,
    inner: RwLock<Inner>,
    /// Held by a change from its read of the state to its swap.
    writer: std::sync::Mutex<()>,
    revocations: tokio::sync::watch::Sender<u64>,
    quotas: Quotas,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("dir", &self.dir)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Loads `dir/security.state` (or starts empty).
    pub fn open(
        fs: Arc<dyn Vfs>,
        dir: PathBuf,
        limits: SecurityLimits,
        super_users: Vec<Principal>,
    ) -> Result<Self, BrokerError> {
        let state = store::read(&*fs, &dir)?;
        Ok(Self {
            inner: RwLock::new(Inner::new(state, &super_users)),
            writer: std::sync::Mutex::new(()),
            fs,
            dir,
            limits,
            config_super_users: super_users,
            revocations: tokio::sync::watch::channel(0).0,
            quotas: Quotas::new(limits.quota_window_ms),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` to a copy of the state, writes the copy, then
    /// swaps it in: a failed write changes nothing.
    ///
    /// Changes are serialized by `writer`; the fsync runs without the state
    /// lock, so calls being authenticated never wait for the disk.
    fn mutate<T>(
        &self,
        change: impl FnOnce(&Inner, &mut StateValue) -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        let _one_writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (out, next) = {
            let inner = self.read();
            let mut next = inner.state.clone();
            (change(&inner, &mut next)?, next)
        };
        store::write(&*self.fs, &self.dir, &next)?;
        let next = Inner::new(next, &self.config_super_users);
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(out)
    }

    /// [`Security::mutate`] of the user named `name`: `change` gets the
    /// state and the user's index in it (UNKNOWN_USER if there is none).
    fn mutate_user<T>(
        &self,
        name: &str,
        change: impl FnOnce(&mut StateValue, usize) -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        self.mutate(|inner, s| {
            let id = inner
                .user_named(name)
                .ok_or_else(|| SecurityError::UnknownUser(name.into()))?
                .id;
            let i = s
                .users
                .iter()
                .position(|u| u.id == id)
                .expect("the user was just found");
            change(s, i)
        })
    }

    /// Bumped whenever a token or user ends: open streams re-check.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    fn revoked(&self) {
        self.revocations.send_modify(|n| *n += 1);
    }

    /// Whether any user exists.
    pub fn has_users(&self) -> bool {
        !self.read().state.users.is_empty()
    }

    /// At first start (no users yet): makes `user` the first admin (a
    /// super user) with `token_text` (made by `strata token generate`) as
    /// its token. Returns whether it did; once any user exists, nothing.
    pub fn bootstrap(
        &self,
        user: &str,
        token_text: &str,
        now_ms: u64,
    ) -> Result<bool, BrokerError> {
        check_name("user", user)?;
        let presented = token::parse(token_text.trim()).ok_or_else(|| {
            BrokerError::InvalidArgument(
                "the bootstrap token is not a Strata token (strata_<id>_<secret>); \
                 make one with `strata token generate`"
                    .into(),
            )
        })?;
        self.mutate(|_, s| {
            if !s.users.is_empty() {
                return Ok(false);
            }
            let id = s.next_user_id.max(1);
            s.next_user_id = id + 1;
            s.users.push(UserValue {
                id,
                name: user.to_string(),
                created_ms: now_ms,
                bootstrap_admin: true,
                scram: Vec::new(),
                plain_hash: String::new(),
            });
            s.tokens.push(TokenValue {
                id: presented.id.clone(),
                user_id: id,
                description: "bootstrap".into(),
                created_ms: now_ms,
                expires_ms: None,
                hash: presented.hash.to_vec(),
            });
            Ok(true)
        })
    }

    /// The session a token's text opens, or why not. A malformed, unknown
    /// or wrong token fails with one message; an expired one says so.
    pub fn authenticate(&self, token_text: &str, now_ms: u64) -> Result<Session, SecurityError> {
        let invalid = || SecurityError::Unauthenticated("invalid token".into());
        let presented = token::parse(token_text).ok_or_else(invalid)?;
        let inner = self.read();
        let stored = inner
            .tokens
            .get(&presented.id)
            .map(|&i| &inner.state.tokens[i]);
        if !token::matches(stored.map(|t| &t.hash[..]), &presented.hash) {
            return Err(invalid());
        }
        let t = stored.ok_or_else(invalid)?;
        let user = inner.user_of(t).ok_or_else(invalid)?;
        if t.expires_ms.is_some_and(|e| now_ms >= e) {
            return Err(SecurityError::Unauthenticated(format!(
                "token {} expired; create a new one with `strata token create`",
                t.id
            )));
        }
        Ok(Session {
            principal: Principal::user(&user.name),
            token_id: Some(t.id.clone()),
            expires_ms: t.expires_ms,
        })
    }

    /// Whether `session` still holds: its token not revoked, its user not
    /// deleted, not expired. Sessions without a token always hold.
    pub fn check_session(&self, session: &Session, now_ms: u64) -> Result<(), SecurityError> {
        let Some(id) = &session.token_id else {
            return Ok(());
        };
        let inner = self.read();
        let t = inner
            .tokens
            .get(id)
            .map(|&i| &inner.state.tokens[i])
            .ok_or_else(|| SecurityError::Unauthenticated(format!("token {id} was revoked")))?;
        if inner.user_of(t).is_none() {
            return Err(SecurityError::Unauthenticated(format!(
                "the user of token {id} was deleted"
            )));
        }
        if t.expires_ms.is_some_and(|e| now_ms >= e) {
            return Err(SecurityError::Unauthenticated(format!(
                "token {id} expired"
            )));
        }
        Ok(())
    }

    /// Whether `p` is a super user (from the config, or the first admin).
    pub fn is_super_user(&self, p: &Principal) -> bool {
        self.read().acls.is_super_user(p)
    }

    /// May `p` do `op` on `r`?
    pub fn authorize(&self, p: &Principal, op: Operation, r: &Resource<'_>) -> Decision {
        self.read().acls.authorize(p, op, r)
    }

    /// Whether `p` may Write some topic: Kafka 3's rule for an idempotent
    /// producer (InitProducerId without a transactional id).
    pub fn may_write_some_topic(&self, p: &Principal) -> bool {
        self.read()
            .acls
            .may_on_some(p, Operation::Write, super::ResourceType::Topic)
    }

    /// Makes a user.
    pub fn create_user(&self, name: &str, now_ms: u64) -> Result<UserInfo, BrokerError> {
        check_name("user", name)?;
        self.mutate(|inner, s| {
            if inner.user_named(name).is_some() {
                return Err(SecurityError::UserExists(name.into()).into());
            }
            if s.users.len() >= self.limits.users_max {
                return Err(full(
                    "security_users_max",
                    self.limits.users_max,
                    format!("user {name:?}"),
                ));
            }
            let id = s.next_user_id.max(1);
            s.next_user_id = id + 1;
            let u = UserValue {
                id,
                name: name.into(),
                created_ms: now_ms,
                bootstrap_admin: false,
                scram: Vec::new(),
                plain_hash: String::new(),
            };
            s.users.push(u.clone());
            Ok(user_info(&u))
        })
    }

    /// Deletes a user and every token of it (its ACLs, which name the
    /// principal, stay: Kafka's ACLs outlive users too).
    pub fn delete_user(&self, name: &str) -> Result<UserInfo, BrokerError> {
        let u = self.mutate(|inner, s| {
            let u = inner
                .user_named(name)
                .cloned()
                .ok_or_else(|| SecurityError::UnknownUser(name.into()))?;
            s.users.retain(|x| x.id != u.id);
            s.tokens.retain(|t| t.user_id != u.id);
            Ok(user_info(&u))
        })?;
        self.revoked();
        Ok(u)
    }

    /// Every user, by id.
    pub fn list_users(&self) -> Vec<UserInfo> {
        self.read().state.users.iter().map(user_info).collect()
    }

    /// Makes a token for `user`, valid for `lifetime_ms` (or until
    /// revoked). Returns its text (to show once) and what is kept.
    pub fn create_token(
        &self,
        user: &str,
        description: &str,
        lifetime_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(TokenInfo, String), BrokerError> {
        if description.len() > super::principal::NAME_BYTES_MAX {
            return Err(full(
                "security_name_bytes_max",
                super::principal::NAME_BYTES_MAX,
                "a token description".into(),
            ));
        }
        let fresh = token::generate()?;
        self.mutate(|inner, s| {
            let u = inner
                .user_named(user)
                .ok_or_else(|| SecurityError::UnknownUser(user.into()))?;
            if s.tokens.len() >= self.limits.tokens_max {
                return Err(full(
                    "security_tokens_max",
                    self.limits.tokens_max,
                    format!("a token for {user:?}"),
                ));
            }
            let t = TokenValue {
                id: fresh.presented.id.clone(),
                user_id: u.id,
                description: description.into(),
                created_ms: now_ms,
                expires_ms: lifetime_ms.map(|l| now_ms.saturating_add(l)),
                hash: fresh.presented.hash.to_vec(),
            };
            let info = inner.token_info(&t);
            s.tokens.push(t);
            Ok((
                TokenInfo {
                    user: user.into(),
                    ..info
                },
                fresh.text.clone(),
            ))
        })
    }

    /// Revokes a token: it stops working at once, on open streams too.
    pub fn revoke_token(&self, id: &str) -> Result<TokenInfo, BrokerError> {
        let t = self.mutate(|inner, s| {
            let t = inner
                .tokens
                .get(id)
                .map(|&i| inner.token_info(&inner.state.tokens[i]))
                .ok_or_else(|| SecurityError::UnknownToken(id.into()))?;
            s.tokens.retain(|x| x.id != id);
            Ok(t)
        })?;
        self.revoked();
        Ok(t)
    }

    /// Tokens, of one user or of all.
    pub fn list_tokens(&self, user: Option<&str>) -> Vec<TokenInfo> {
        let inner = self.read();
        inner
            .state
            .tokens
            .iter()
            .map(|t| inner.token_info(t))
            .filter(|t| user.is_none_or(|u| t.user == u))
            .collect()
    }

    /// Adds ACLs (an entry already there is not added twice); returns how
    /// many were new.
    pub fn add_acls(&self, acls: &[Acl]) -> Result<usize, BrokerError> {
        for a in acls {
            Principal::parse(&a.principal, true)?;
            check_name("resource", &a.resource_name)?;
        }
        self.mutate(|_, s| {
            let mut added = 0;
            for a in acls {
                let v = store::AclValue::from(a);
                // `s` is the state being made: this also drops a repeat
                // within the same request.
                if s.acls.contains(&v) {
                    continue;
                }
                if s.acls.len() >= self.limits.acls_max {
                    return Err(full(
                        "security_acls_max",
                        self.limits.acls_max,
                        format!("{a:?}"),
                    ));
                }
                s.acls.push(v);
                added += 1;
            }
            Ok(added)
        })
    }

    /// Deletes the ACLs `filter` matches; returns them.
    pub fn delete_acls(&self, filter: &AclFilter) -> Result<Vec<Acl>, BrokerError> {
        self.mutate(|inner, s| {
            let gone: Vec<Acl> = self.filtered(inner, filter);
            s.acls
                .retain(|v| Acl::try_from(v).is_ok_and(|a| !filter.matches(&a)));
            Ok(gone)
        })
    }

    /// The ACLs `filter` matches.
    pub fn list_acls(&self, filter: &AclFilter) -> Vec<Acl> {
        self.filtered(&self.read(), filter)
    }

    fn filtered(&self, inner: &Inner, filter: &AclFilter) -> Vec<Acl> {
        inner
            .acls
            .entries()
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }
}
