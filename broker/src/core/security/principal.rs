//! Principals: who a request runs as, in Kafka's `Type:name` form
//! (`User:alice`), so ACLs written for Kafka read the same here.

use std::fmt;

use crate::core::BrokerError;

/// The longest principal name we accept (`security_name_bytes_max`).
pub const NAME_BYTES_MAX: usize = 255;

/// Who a request runs as.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Principal {
    kind: String,
    name: String,
}

impl Principal {
    /// `User:name`.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: "User".into(),
            name: name.into(),
        }
    }

    /// Requests of a broker with authentication off run as this super user.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// The type (`User`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses `Type:name` (Kafka's form); a `*` name (every principal of
    /// the type) is allowed only where `wildcard` says so (in ACLs).
    pub fn parse(s: &str, wildcard: bool) -> Result<Self, BrokerError> {
        let bad = |why: &str| {
            BrokerError::InvalidArgument(format!(
                "invalid principal {s:?}: {why} (write it as User:name)"
            ))
        };
        let (kind, name) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        if kind != "User" {
            return Err(bad("the only principal type is User"));
        }
        check_name("principal", name)?;
        if name == "*" && !wildcard {
            return Err(bad("'*' is only for ACLs"));
        }
        Ok(Self::user(name))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Checks a user, token or principal name: 1 to [`NAME_BYTES_MAX`] bytes
/// of printable ASCII without spaces.
pub fn check_name(what: &str, name: &str) -> Result<(), BrokerError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(BrokerError::InvalidArgument(format!(
            "invalid {what} name {name:?}: it must be 1 to {NAME_BYTES_MAX} bytes \
             (security_name_bytes_max)"
        )));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BrokerError::InvalidArgument(format!(
            "invalid {what} name {name:?}: only printable ASCII without spaces"
        )));
    }
    Ok(())
}
