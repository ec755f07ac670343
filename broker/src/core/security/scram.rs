//! SCRAM (RFC 5802, with RFC 7677's SHA-256 and Kafka's SHA-512), the
//! server side, for SASL on the Kafka listener.
//!
//! The broker stores per user and mechanism what RFC 5802 says a server
//! keeps: salt, iteration count, StoredKey = H(HMAC(SaltedPassword,
//! "Client Key")) and ServerKey = HMAC(SaltedPassword, "Server Key").
//! Neither the password nor anything that would log in as the user is
//! kept. An exchange for an unknown user runs on a decoy credential made
//! from the user name and a per-broker secret, so it fails only at the
//! end, like a wrong password, and the same way.
//!
//! Not supported (refused as malformed): channel binding (`p=`), an
//! authorization id other than the user, Kafka's delegation-token
//! extension (`tokenauth`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's bounds on a credential's iteration count.
pub const ITERATIONS_MIN: u32 = 4096;
/// See [`ITERATIONS_MIN`].
pub const ITERATIONS_MAX: u32 = 16384;
/// The longest SCRAM message read (scram_message_bytes_max).
pub const MESSAGE_BYTES_MAX: usize = 4096;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Mechanism {
    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's number for it (AlterUserScramCredentials), also ours on
    /// disk and in the API.
    pub fn number(self) -> u32 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// The mechanism of a number.
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The length of its hash, and so of a salted password.
    pub fn hash_bytes(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// The mechanism of a SASL name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            Self::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// What the broker keeps to check one user's SCRAM logins.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// From the salted password (what Kafka's AlterUserScramCredentials
    /// sends: the password itself never reaches the broker).
    pub fn from_salted(
        mechanism: Mechanism,
        salt: Vec<u8>,
        iterations: u32,
        salted: &[u8],
    ) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        Self {
            mechanism,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// From a password.
    pub fn new(mechanism: Mechanism, password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted(mechanism, salt, iterations, &salted)
    }

    /// A credential no password matches, the same for the same user name:
    /// what an exchange for an unknown user runs on.
    fn decoy(mechanism: Mechanism, user: &str, secret: &[u8]) -> Self {
        let derive = |what: &str| mechanism.hmac(secret, format!("{what}\0{user}").as_bytes());
        Self {
            mechanism,
            salt: derive("salt")[..16].to_vec(),
            iterations: ITERATIONS_MIN,
            stored_key: derive("stored"),
            server_key: derive("server"),
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message that is not SCRAM as we serve it.
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    /// Wrong password or unknown user (one answer for both).
    #[error("authentication failed: invalid credentials")]
    Failed,
}

fn malformed(why: impl Into<String>) -> ScramError {
    ScramError::Malformed(why.into())
}

/// A SCRAM `saslname`: `=2C` is `,`, `=3D` is `=`.
fn decode_name(s: &str) -> Result<String, ScramError> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("a user name with a bare '='")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn text(msg: &[u8]) -> Result<&str, ScramError> {
    if msg.len() > MESSAGE_BYTES_MAX {
        return Err(malformed(format!(
            "{} bytes, over scram_message_bytes_max ({MESSAGE_BYTES_MAX})",
            msg.len()
        )));
    }
    std::str::from_utf8(msg).map_err(|_| malformed("not UTF-8"))
}

/// The server side of one exchange, between its two round trips.
#[derive(Debug)]
pub struct ServerExchange {
    user: String,
    known: bool,
    credential: Credential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ServerExchange {
    /// Reads client-first, looks the user up, and answers server-first.
    /// `server_nonce`: fresh random printable text; `secret`: the broker's
    /// decoy secret.
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        server_nonce: &str,
        secret: &[u8],
        lookup: impl FnOnce(&str) -> Option<Credential>,
    ) -> Result<(Self, String), ScramError> {
        let msg = text(client_first)?;
        let (flag, rest) = msg
            .split_once(',')
            .ok_or_else(|| malformed("no GS2 header"))?;
        if flag.starts_with("p=") {
            return Err(malformed("channel binding is not supported"));
        }
        if flag != "n" && flag != "y" {
            return Err(malformed("a GS2 flag other than n, y"));
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("no GS2 header"))?;
        let mut attrs = bare.split(',');
        let user = attrs
            .next()
            .and_then(|a| a.strip_prefix("n="))
            .ok_or_else(|| malformed("no user name (n=)"))?;
        let user = decode_name(user)?;
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| malformed("no client nonce (r=)"))?;
        if attrs.any(|a| a.starts_with("tokenauth")) {
            return Err(malformed("delegation tokens are not supported"));
        }
        if !authzid.is_empty()
            && authzid.strip_prefix("a=").map(decode_name) != Some(Ok(user.clone()))
        {
            return Err(malformed("an authorization id other than the user"));
        }
        let (credential, known) = match lookup(&user) {
            Some(c) if c.mechanism == mechanism => (c, true),
            _ => (Credential::decoy(mechanism, &user, secret), false),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let exchange = Self {
            user,
            known,
            credential,
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first))
    }

    /// The exchange's mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.credential.mechanism
    }

    /// Checks client-final: the user's name and server-final, or why not.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, String), ScramError> {
        let msg = text(client_final)?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof (p=)"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(|| malformed("no channel binding (c=)"))?;
        if binding != B64.encode(&self.gs2_header) {
            return Err(malformed("channel binding does not match the GS2 header"));
        }
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r="));
        if nonce != Some(self.nonce.as_str()) {
            return Err(malformed("the nonce is not this exchange's"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed("the proof is not base64"))?;
        let m = self.credential.mechanism;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::Failed);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let matches: bool = m
            .hash(&client_key)
            .ct_eq(&self.credential.stored_key)
            .into();
        if !(matches && self.known) {
            return Err(ScramError::Failed);
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok((self.user, format!("v={}", B64.encode(server_signature))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"decoy secret";

    /// RFC 7677, section 3: the SCRAM-SHA-256 example exchange.
    #[test]
    fn the_rfc_7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = Credential::new(Mechanism::Sha256, "pencil", salt, 4096);
        let (ex, server_first) = ServerExchange::start(
            Mechanism::Sha256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            SECRET,
            |u| (u == "user").then(|| cred.clone()),
        )
        .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, server_final) = ex
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    /// A client's side, as RFC 5802 computes it, for the round trips.
    fn client_final(
        m: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        let attrs: Vec<&str> = server_first.split(',').collect();
        let nonce = attrs[0].strip_prefix("r=").unwrap();
        let salt = B64.decode(attrs[1].strip_prefix("s=").unwrap()).unwrap();
        let i: u32 = attrs[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted = m.salted_password(password.as_bytes(), &salt, i);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored = m.hash(&client_key);
        let without = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without}");
        let sig = m.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without},p={}", B64.encode(proof))
    }

    fn login(
        m: Mechanism,
        user: &str,
        password: &str,
        stored: &Credential,
    ) -> Result<String, ScramError> {
        let bare = format!("n={user},r=abcdef");
        let (ex, sf) =
            ServerExchange::start(m, format!("n,,{bare}").as_bytes(), "XYZ", SECRET, |u| {
                (u == "alice").then(|| stored.clone())
            })?;
        ex.finish(client_final(m, password, &bare, &sf).as_bytes())
            .map(|(u, _)| u)
    }

    #[test]
    fn wrong_passwords_and_unknown_users_fail_alike() {
        for m in [Mechanism::Sha256, Mechanism::Sha512] {
            let stored = Credential::new(m, "s3cret", b"0123456789abcdef".to_vec(), 4096);
            assert_eq!(login(m, "alice", "s3cret", &stored).as_deref(), Ok("alice"));
            assert_eq!(login(m, "alice", "guess", &stored), Err(ScramError::Failed));
            assert_eq!(
                login(m, "mallory", "s3cret", &stored),
                Err(ScramError::Failed)
            );
        }
        // A credential of the other mechanism does not log in either.
        let stored = Credential::new(Mechanism::Sha512, "s3cret", b"salt".to_vec(), 4096);
        assert_eq!(
            login(Mechanism::Sha256, "alice", "s3cret", &stored),
            Err(ScramError::Failed)
        );
        // An unknown user's salt is stable, so it cannot be told apart by asking twice.
        let first = |user: &str| {
            ServerExchange::start(
                Mechanism::Sha256,
                format!("n,,n={user},r=a").as_bytes(),
                "b",
                SECRET,
                |_| None,
            )
            .unwrap()
            .1
        };
        assert_eq!(first("nobody"), first("nobody"));
        assert_ne!(first("nobody"), first("other"));
    }

    #[test]
    fn malformed_messages_are_refused_by_what_is_wrong() {
        let start = |msg: &str| {
            ServerExchange::start(Mechanism::Sha256, msg.as_bytes(), "s", SECRET, |_| None)
                .map(|_| ())
        };
        for (msg, why) in [
            ("p=tls-unique,,n=a,r=b", "channel binding"),
            ("n,,r=b", "no user name"),
            ("n,,n=a", "no client nonce"),
            ("n,,n=a=b,r=c", "bare '='"),
            ("n,a=bob,n=alice,r=c", "authorization id"),
            ("n,,n=a,r=b,tokenauth=true", "delegation tokens"),
        ] {
            let err = start(msg).unwrap_err().to_string();
            assert!(err.contains(why), "{msg}: {err}");
        }
        assert!(
            start("n,a=alice,n=alice,r=c").is_ok(),
            "authzid equal to the user"
        );
        assert_eq!(decode_name("a=2Cb=3Dc").unwrap(), "a,b=c");
        let big = "x".repeat(MESSAGE_BYTES_MAX + 1);
        assert!(
            start(&big)
                .unwrap_err()
                .to_string()
                .contains("scram_message_bytes_max")
        );
        let (ex, _) =
            ServerExchange::start(Mechanism::Sha256, b"n,,n=a,r=b", "s", SECRET, |_| None).unwrap();
        let err = ex.finish(b"c=biws,r=other,p=AAAA").unwrap_err().to_string();
        assert!(err.contains("nonce"), "{err}");
    }
}
