//! Kafka's `ssl.principal.mapping.rules`: how a client certificate's
//! subject (an RFC 2253 distinguished name, `CN=alice,OU=eng,O=Acme`)
//! becomes a principal's name. Rules are tried in order; the first whose
//! pattern matches the whole name gives the result:
//!
//! - `RULE:pattern/replacement/` (`$1` for a group; `\/` for a slash in
//!   either part), optionally followed by `L` or `U` to lower- or
//!   upper-case the result;
//! - `DEFAULT`: the name unchanged.
//!
//! `RULE:^CN=(.*?),OU=(.*?)$/$1/L,DEFAULT` maps `CN=Alice,OU=eng` to
//! `alice` and anything else to its whole name. No rule matching refuses
//! the connection (as Kafka does).

use regex::Regex;

use crate::core::BrokerError;

/// One rule.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// Parsed rules.
#[derive(Debug, Clone)]
pub struct MappingRules(Vec<Rule>);

impl Default for MappingRules {
    /// Kafka's default: `DEFAULT`.
    fn default() -> Self {
        Self(vec![Rule::Default])
    }
}

fn bad(rules: &str, why: &str) -> BrokerError {
    BrokerError::InvalidArgument(format!(
        "--tls-principal-mapping-rules {rules:?}: {why} (write RULE:pattern/replacement/[L|U] \
         or DEFAULT, separated by commas)"
    ))
}

/// Reads up to an unescaped `/`; `\/` is a slash.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if s[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn group_ref() -> &'static Regex {
    static GROUP: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    GROUP.get_or_init(|| Regex::new(r"\$(\d+)").expect("a valid pattern"))
}

impl MappingRules {
    /// Parses the rules' text.
    pub fn parse(text: &str) -> Result<Self, BrokerError> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) =
                    until_slash(r).ok_or_else(|| bad(text, "a RULE without its pattern's '/'"))?;
                let (replacement, r) = until_slash(r)
                    .ok_or_else(|| bad(text, "a RULE without its replacement's '/'"))?;
                let (case, r) = match r.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &r[1..]),
                    _ => (None, r),
                };
                let anchored = format!("^(?:{pattern})$");
                let pattern = Regex::new(&anchored).map_err(|e| bad(text, &e.to_string()))?;
                rules.push(Rule::Replace {
                    pattern,
                    // Java's `$1x` is group 1 then `x`; the regex crate
                    // would read a group named `1x`.
                    replacement: group_ref().replace_all(&replacement, "$${$1}").into_owned(),
                    case,
                });
                rest = r;
            } else {
                return Err(bad(text, &format!("unexpected {rest:?}")));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(bad(text, &format!("expected ',' before {rest:?}"))),
            }
        }
        if rules.is_empty() {
            return Err(bad(text, "no rules"));
        }
        Ok(Self(rules))
    }

    /// The principal name of `dn`, or `None` if no rule matches.
    pub fn apply(&self, dn: &str) -> Option<String> {
        for rule in &self.0 {
            match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if !pattern.is_match(dn) {
                        continue;
                    }
                    let out = pattern.replace(dn, replacement.as_str()).into_owned();
                    return Some(match case {
                        Some('L') => out.to_lowercase(),
                        Some('U') => out.to_uppercase(),
                        _ => out,
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_map_names_as_kafkas_do() {
        let r = MappingRules::parse(
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=([^,]*).*$/svc-$1/, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            r.apply("CN=Alice,OU=ServiceUsers,O=Acme").as_deref(),
            Some("alice")
        );
        assert_eq!(r.apply("CN=bob,O=Acme").as_deref(), Some("svc-bob"));
        let only = MappingRules::parse(r"RULE:^CN=(.*)$/$1/U").unwrap();
        assert_eq!(only.apply("CN=carol").as_deref(), Some("CAROL"));
        assert_eq!(only.apply("O=Acme"), None, "no rule matching refuses");
        let glued = MappingRules::parse(r"RULE:^CN=(.*)$/$1x/").unwrap();
        assert_eq!(glued.apply("CN=e").as_deref(), Some("ex"));
        let slash = MappingRules::parse(r"RULE:^CN=(.*)\/x$/$1\/y/").unwrap();
        assert_eq!(slash.apply("CN=a/x").as_deref(), Some("a/y"));
        assert_eq!(
            MappingRules::default().apply("CN=d").as_deref(),
            Some("CN=d")
        );
        for bad in [
            "",
            "RULE:abc",
            "RULE:a/b",
            "NOPE",
            "RULE:(/x/",
            "DEFAULT DEFAULT",
        ] {
            assert!(MappingRules::parse(bad).is_err(), "{bad:?}");
        }
    }
}
