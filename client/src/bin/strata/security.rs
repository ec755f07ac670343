//! `strata whoami`, `strata user ...`, `strata token ...` and `strata acl
//! ...`: the Security service from the command line. `token generate`
//! works offline: it makes the first admin's token before the broker's
//! first start with `--auth`.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use strata_client::security::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternType, QuotaRates, ResourceType,
    ScramMechanism,
};
use strata_client::{Client, generate_token};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Make a user (then give it a token and ACLs).
    Create { name: String },
    /// Delete a user and every token of it (its ACLs stay).
    Delete { name: String },
    /// List users (and their SCRAM mechanisms).
    List,
    /// Set a user's SCRAM credential, for SASL on the Kafka listener. The
    /// password is salted here and never sent.
    ScramSet {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, value_parser = ["SCRAM-SHA-256", "SCRAM-SHA-512"])]
        mechanism: String,
        /// A file holding the password (or set STRATA_SCRAM_PASSWORD);
        /// never a flag, which other users could read from the process list.
        #[arg(long, env = "STRATA_SCRAM_PASSWORD_FILE")]
        password_file: Option<std::path::PathBuf>,
        /// PBKDF2 rounds, 4096 to 16384.
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Set a user's password for SASL PLAIN (served over TLS only); it is
    /// hashed here (Argon2id) and only the hash is sent.
    PlainSet {
        name: String,
        /// A file holding the password (or set STRATA_SCRAM_PASSWORD).
        #[arg(long, env = "STRATA_SCRAM_PASSWORD_FILE")]
        password_file: Option<std::path::PathBuf>,
    },
    /// Delete a user's PLAIN password.
    PlainDelete { name: String },
    /// Delete a user's SCRAM credential.
    ScramDelete {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, value_parser = ["SCRAM-SHA-256", "SCRAM-SHA-512"])]
        mechanism: String,
    },
}

fn mechanism(name: &str) -> ScramMechanism {
    if name == "SCRAM-SHA-512" {
        ScramMechanism::ScramSha512
    } else {
        ScramMechanism::ScramSha256
    }
}

fn mechanism_name(m: i32) -> &'static str {
    match ScramMechanism::try_from(m) {
        Ok(ScramMechanism::ScramSha256) => "SCRAM-SHA-256",
        Ok(ScramMechanism::ScramSha512) => "SCRAM-SHA-512",
        _ => "unknown",
    }
}

/// The password: the file's first line, or STRATA_SCRAM_PASSWORD.
fn password(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    if let Some(p) = file {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading --password-file {}", p.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    match std::env::var("STRATA_SCRAM_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => bail!("no password: give --password-file or set STRATA_SCRAM_PASSWORD"),
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a fresh token without asking a broker: the first admin's,
    /// for --auth-bootstrap-token-file.
    Generate,
    /// Make a token for a user and print it (shown this once).
    Create {
        /// Whose token.
        #[arg(long)]
        user: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// How long it works (`30d`, `12h`); default: until revoked.
        #[arg(long)]
        lifetime: Option<humantime::Duration>,
    },
    /// List tokens (ids, never secrets).
    List {
        /// Only this user's.
        #[arg(long, default_value = "")]
        user: String,
    },
    /// Revoke a token by id: it stops working at once.
    Revoke { id: String },
}

/// The resource part of `acl add|list|remove`.
#[derive(Debug, clap::Args)]
pub struct AclTarget {
    /// `User:alice`, or `User:*`.
    #[arg(long)]
    principal: Option<String>,
    /// A topic (`*`: every topic).
    #[arg(long, conflicts_with_all = ["group", "cluster"])]
    topic: Option<String>,
    /// A group (consumer or share; `*`: every group).
    #[arg(long, conflicts_with = "cluster")]
    group: Option<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
    /// The name is a prefix (Kafka's PREFIXED pattern).
    #[arg(long)]
    prefixed: bool,
    /// Operation(s): all, read, write, create, delete, alter, describe,
    /// describe-configs, alter-configs.
    #[arg(long = "op", value_enum)]
    ops: Vec<OpArg>,
    /// A DENY entry (DENY wins over ALLOW).
    #[arg(long)]
    deny: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OpArg {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    DescribeConfigs,
    AlterConfigs,
}

impl OpArg {
    fn proto(self) -> AclOperation {
        match self {
            OpArg::All => AclOperation::All,
            OpArg::Read => AclOperation::Read,
            OpArg::Write => AclOperation::Write,
            OpArg::Create => AclOperation::Create,
            OpArg::Delete => AclOperation::Delete,
            OpArg::Alter => AclOperation::Alter,
            OpArg::Describe => AclOperation::Describe,
            OpArg::DescribeConfigs => AclOperation::DescribeConfigs,
            OpArg::AlterConfigs => AclOperation::AlterConfigs,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set the quotas of a principal, a client id, or the two together
    /// (an unset rate falls through to the next: principal with client id,
    /// principal, client id, the broker's default).
    Set {
        /// `User:alice`.
        #[arg(long, required_unless_present = "client_id")]
        principal: Option<String>,
        /// A client id (the `strata-client-id` a client sends).
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long)]
        produce_bytes_per_sec: Option<u64>,
        #[arg(long)]
        fetch_bytes_per_sec: Option<u64>,
        #[arg(long)]
        requests_per_sec: Option<u64>,
    },
    /// List principals' own quotas and the defaults.
    List,
}

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Add ALLOW (or --deny) entries: one per --op.
    Add(AclTarget),
    /// List the entries that match (every given option must match).
    List {
        #[command(flatten)]
        target: AclTarget,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove the entries that match (at least a principal or a resource).
    Remove(AclTarget),
}

impl AclTarget {
    fn resource(&self) -> (ResourceType, String) {
        match (&self.topic, &self.group, self.cluster) {
            (Some(t), _, _) => (ResourceType::Topic, t.clone()),
            (_, Some(g), _) => (ResourceType::Group, g.clone()),
            (_, _, true) => (ResourceType::Cluster, "kafka-cluster".into()),
            _ => (ResourceType::Unspecified, String::new()),
        }
    }

    fn pattern(&self) -> PatternType {
        if self.prefixed {
            PatternType::Prefixed
        } else {
            PatternType::Literal
        }
    }

    fn permission(&self) -> AclPermission {
        if self.deny {
            AclPermission::Deny
        } else {
            AclPermission::Allow
        }
    }

    fn bindings(&self) -> anyhow::Result<Vec<AclBinding>> {
        let Some(principal) = &self.principal else {
            bail!("an ACL needs --principal (User:name, or User:*)");
        };
        let (rt, name) = self.resource();
        if rt == ResourceType::Unspecified {
            bail!("an ACL needs --topic, --group or --cluster");
        }
        if self.ops.is_empty() {
            bail!("an ACL needs at least one --op");
        }
        Ok(self
            .ops
            .iter()
            .map(|op| AclBinding {
                principal: principal.clone(),
                resource_type: rt as i32,
                pattern_type: self.pattern() as i32,
                resource_name: name.clone(),
                operation: op.proto() as i32,
                permission: self.permission() as i32,
            })
            .collect())
    }

    /// A filter: given options only (the permission only with --deny).
    fn filter(&self, op: Option<OpArg>) -> AclFilter {
        let (rt, name) = self.resource();
        AclFilter {
            principal: self.principal.clone().unwrap_or_default(),
            resource_type: rt as i32,
            pattern_type: if self.prefixed {
                PatternType::Prefixed as i32
            } else if rt == ResourceType::Unspecified {
                0
            } else {
                PatternType::Literal as i32
            },
            resource_name: name,
            operation: op.map_or(0, |o| o.proto() as i32),
            permission: if self.deny {
                AclPermission::Deny as i32
            } else {
                0
            },
        }
    }

    fn filters(&self) -> Vec<AclFilter> {
        if self.ops.is_empty() {
            vec![self.filter(None)]
        } else {
            self.ops.iter().map(|o| self.filter(Some(*o))).collect()
        }
    }
}

/// `Topic:orders` style, with Kafka's words.
fn line(a: &AclBinding) -> String {
    let rt = a
        .resource_type()
        .as_str_name()
        .trim_start_matches("RESOURCE_TYPE_");
    let pt = a
        .pattern_type()
        .as_str_name()
        .trim_start_matches("PATTERN_TYPE_");
    let op = a
        .operation()
        .as_str_name()
        .trim_start_matches("ACL_OPERATION_");
    let perm = a
        .permission()
        .as_str_name()
        .trim_start_matches("ACL_PERMISSION_");
    format!("{} {perm} {op} {rt}:{}:{pt}", a.principal, a.resource_name)
}

pub async fn user(client: &Client, cmd: UserCommand) -> anyhow::Result<()> {
    let s = client.security();
    match cmd {
        UserCommand::Create { name } => {
            let u = s.create_user(&name).await?;
            println!("created user {} (id {})", u.name, u.id);
        }
        UserCommand::Delete { name } => {
            let u = s.delete_user(&name).await?;
            println!("deleted user {} (id {}) and its tokens", u.name, u.id);
        }
        UserCommand::List => {
            for u in s.list_users().await? {
                let admin = if u.bootstrap_admin {
                    " (bootstrap admin)"
                } else {
                    ""
                };
                let scram: Vec<String> = u
                    .scram_credentials
                    .iter()
                    .map(|c| {
                        format!(
                            "{} ({} iterations)",
                            mechanism_name(c.mechanism),
                            c.iterations
                        )
                    })
                    .collect();
                let mut creds = scram;
                if u.plain_credential {
                    creds.push("PLAIN".into());
                }
                println!("{}\t{}{admin}\t{}", u.id, u.name, creds.join(", "));
            }
        }
        UserCommand::ScramSet {
            name,
            mechanism: m,
            password_file,
            iterations,
        } => {
            let pw = password(password_file.as_deref())?;
            s.set_scram_credential(&name, mechanism(&m), &pw, iterations)
                .await?;
            println!("set the {m} credential of user {name}");
        }
        UserCommand::PlainSet {
            name,
            password_file,
        } => {
            let pw = password(password_file.as_deref())?;
            s.set_plain_credential(&name, &pw).await?;
            println!("set the PLAIN password of user {name}");
        }
        UserCommand::PlainDelete { name } => {
            s.delete_plain_credential(&name).await?;
            println!("deleted the PLAIN password of user {name}");
        }
        UserCommand::ScramDelete { name, mechanism: m } => {
            s.delete_scram_credential(&name, mechanism(&m)).await?;
            println!("deleted the {m} credential of user {name}");
        }
    }
    Ok(())
}

pub async fn token(client: Option<&Client>, cmd: TokenCommand) -> anyhow::Result<()> {
    let Some(client) = client else {
        // Generate: no broker.
        println!("{}", generate_token()?);
        return Ok(());
    };
    let s = client.security();
    match cmd {
        TokenCommand::Generate => println!("{}", generate_token()?),
        TokenCommand::Create {
            user,
            description,
            lifetime,
        } => {
            let ms = lifetime.map_or(0, |d| d.as_millis() as u64);
            let t = s.create_token(&user, &description, ms).await?;
            eprintln!(
                "token {} for {}: shown this once, keep it safe",
                t.token.id, t.token.user
            );
            println!("{}", t.text);
        }
        TokenCommand::List { user } => {
            for t in s.list_tokens(&user).await? {
                let expires = if t.expires_ms == 0 {
                    "never".to_string()
                } else {
                    t.expires_ms.to_string()
                };
                println!(
                    "{}\t{}\texpires_ms={expires}\t{}",
                    t.id, t.user, t.description
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let t = s.revoke_token(&id).await?;
            println!("revoked token {} of {}", t.id, t.user);
        }
    }
    Ok(())
}

pub async fn acl(client: &Client, cmd: AclCommand) -> anyhow::Result<()> {
    let s = client.security();
    match cmd {
        AclCommand::Add(target) => {
            let b = target.bindings()?;
            let n = b.len();
            let added = s.create_acls(b).await?;
            println!("added {added} ACL(s) ({} already there)", n as u32 - added);
        }
        AclCommand::List { target, json } => {
            let mut all = Vec::new();
            for f in target.filters() {
                all.extend(s.list_acls(f).await?);
            }
            for a in &all {
                if json {
                    println!(
                        "{}",
                        json!({"principal": a.principal, "resource_type": a.resource_type().as_str_name(),
                            "pattern_type": a.pattern_type().as_str_name(), "resource_name": a.resource_name,
                            "operation": a.operation().as_str_name(), "permission": a.permission().as_str_name()})
                    );
                } else {
                    println!("{}", line(a));
                }
            }
        }
        AclCommand::Remove(target) => {
            if target.principal.is_none() && target.resource().0 == ResourceType::Unspecified {
                bail!("say which ACLs to remove: --principal, --topic, --group or --cluster");
            }
            for f in target.filters() {
                for a in s.delete_acls(f).await? {
                    println!("removed {}", line(&a));
                }
            }
        }
    }
    Ok(())
}

fn rates_line(r: &QuotaRates) -> String {
    let one = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
    format!(
        "produce_bytes_per_sec={} fetch_bytes_per_sec={} requests_per_sec={}",
        one(r.produce_bytes_per_sec),
        one(r.fetch_bytes_per_sec),
        one(r.requests_per_sec)
    )
}

/// `User:alice`, `User:alice client-id app`, `client-id app`.
fn entity(principal: &str, client_id: &str) -> String {
    match (principal, client_id) {
        (p, "") => p.to_string(),
        ("", c) => format!("client-id {c}"),
        (p, c) => format!("{p} client-id {c}"),
    }
}

pub async fn quota(client: &Client, cmd: QuotaCommand) -> anyhow::Result<()> {
    let s = client.security();
    match cmd {
        QuotaCommand::Set {
            principal,
            client_id,
            produce_bytes_per_sec,
            fetch_bytes_per_sec,
            requests_per_sec,
        } => {
            let rates = QuotaRates {
                produce_bytes_per_sec,
                fetch_bytes_per_sec,
                requests_per_sec,
            };
            let (p, c) = (principal.unwrap_or_default(), client_id.unwrap_or_default());
            s.set_quota_of(&p, &c, rates).await?;
            println!("{}: {}", entity(&p, &c), rates_line(&rates));
        }
        QuotaCommand::List => {
            let l = s.list_quotas().await?;
            println!("default: {}", rates_line(&l.defaults.unwrap_or_default()));
            for q in l.quotas {
                println!(
                    "{}: {}",
                    entity(&q.principal, &q.client_id),
                    rates_line(&q.rates.unwrap_or_default())
                );
            }
        }
    }
    Ok(())
}

pub async fn whoami(client: &Client) -> anyhow::Result<()> {
    let w = client.security().who_am_i().await?;
    let sup = if w.super_user { " (super user)" } else { "" };
    println!("{}{sup}", w.principal);
    Ok(())
}
