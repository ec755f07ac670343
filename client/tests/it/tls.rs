//! TLS against the real broker binary, with certificates made here by
//! rcgen: a CA, the broker's certificate, client certificates, a foreign
//! CA, an expired certificate and one for the wrong name. The right ones
//! connect; every other is refused. A client certificate's subject maps to
//! the principal calls run as (Kafka's mapping rules); SIGHUP swaps the
//! broker's certificate without dropping open connections; with --auth,
//! connections that never authenticate, and the (n+1)th from one address,
//! are closed. Every wait is on an event (a reply, a closed socket, a
//! line the broker prints).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::support::BrokerProcess;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    date_time_ymd,
};
use strata_client::proto::v1;
use strata_client::{Client, ClientOptions, TlsOptions, Token, generate_token};
use tonic::Code;

/// A CA that signs certificates.
pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub(crate) pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    /// A certificate for `names` (SANs) with subject `O=Acme,CN=cn`
    /// (encoded in that order, so its RFC 4514 text is `CN=cn,O=Acme`):
    /// its PEM and its key's.
    pub(crate) fn sign(&self, names: &[&str], cn: &str, expired: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Everything a test needs: the CA, the broker's files, a foreign CA.
pub(crate) struct Pki {
    pub(crate) ca: Ca,
    foreign: Ca,
    dir: PathBuf,
    ca_file: PathBuf,
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
}

impl Pki {
    pub(crate) fn new(dir: &Path) -> Self {
        let (ca, foreign) = (Ca::new("Strata Test CA"), Ca::new("Foreign CA"));
        let (cert, key) = ca.sign(&["localhost", "127.0.0.1"], "broker", false);
        Self {
            ca_file: write(dir, "ca.pem", &ca.pem),
            cert_file: write(dir, "broker.pem", &cert),
            key_file: write(dir, "broker.key", &key),
            ca,
            foreign,
            dir: dir.to_owned(),
        }
    }

    /// Client TLS options: trusting `ca` (PEM), with an identity or not.
    fn client(&self, ca: &str, identity: Option<(String, String)>) -> TlsOptions {
        TlsOptions {
            ca_pem: Some(ca.as_bytes().to_vec()),
            identity: identity.map(|(c, k)| (c.into_bytes(), k.into_bytes())),
            server_name: Some("localhost".into()),
        }
    }

    fn broker_flags(&self) -> Vec<String> {
        [
            "--no-kafka",
            "--tls-cert",
            self.cert_file.to_str().unwrap(),
            "--tls-key",
            self.key_file.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    }
}

fn https(b: &BrokerProcess) -> String {
    format!("https://{}", b.addr)
}

async fn connect(
    b: &BrokerProcess,
    tls: TlsOptions,
    token: Option<&str>,
) -> strata_client::Result<Client> {
    let options = ClientOptions {
        tls: Some(tls),
        token: token.map(Token::new),
        ..Default::default()
    };
    Client::connect_with(https(b), options).await
}

/// Who the broker says a connection's calls run as, or the error text of
/// the connect or of the call (with TLS 1.3 a server refuses a client's
/// certificate after the client's side of the handshake is done, so the
/// refusal can arrive on the first call).
async fn who(b: &BrokerProcess, tls: TlsOptions, token: Option<&str>) -> Result<String, String> {
    let client = connect(b, tls, token).await.map_err(|e| e.to_string())?;
    match client.security().who_am_i().await {
        Ok(me) => Ok(me.principal),
        Err(e) => Err(e.to_string()),
    }
}

fn start(dir: &Path, flags: &[String]) -> BrokerProcess {
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    BrokerProcess::start_in(&dir.join("data"), &refs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_the_right_certificates_and_maps_their_principals() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let admin_token = generate_token().unwrap();
    let token_file = write(dir.path(), "admin.token", &admin_token);
    let mut flags = pki.broker_flags();
    flags.extend(
        [
            "--auth",
            "--auth-bootstrap-token-file",
            token_file.to_str().unwrap(),
            "--tls-client-ca",
            pki.ca_file.to_str().unwrap(),
            "--tls-principal-mapping-rules",
            "RULE:^CN=([^,]*),O=Acme$/$1/L,DEFAULT",
        ]
        .map(String::from),
    );
    let b = start(dir.path(), &flags);
    let alice = pki.ca.sign(&[], "Alice", false);

    // The CA's client certificate: calls run as the mapped name.
    let me = who(&b, pki.client(&pki.ca.pem, Some(alice.clone())), None).await;
    assert_eq!(me.as_deref(), Ok("User:alice"));
    // Denied like any principal without ACLs, by name.
    let client = connect(&b, pki.client(&pki.ca.pem, Some(alice.clone())), None)
        .await
        .unwrap();
    let err = client.admin().create_topic("t", 1, &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    assert!(err.to_string().contains("User:alice"), "{err}");
    // A token on a certificate connection names who the call runs as.
    let me = who(
        &b,
        pki.client(&pki.ca.pem, Some(alice.clone())),
        Some(&admin_token),
    )
    .await;
    assert_eq!(me.as_deref(), Ok("User:admin"));
    // No rule but DEFAULT matches: the whole subject is the name.
    let bob = pki.ca.sign(&[], "Bob,Jr", false);
    let me = who(&b, pki.client(&pki.ca.pem, Some(bob)), None).await;
    assert_eq!(me.as_deref(), Ok(r"User:CN=Bob\,Jr,O=Acme"));

    // Refused: no client certificate, one of a foreign CA, an expired one.
    let refused = [
        ("no client certificate", pki.client(&pki.ca.pem, None)),
        (
            "a foreign CA's certificate",
            pki.client(&pki.ca.pem, Some(pki.foreign.sign(&[], "Mallory", false))),
        ),
        (
            "an expired certificate",
            pki.client(&pki.ca.pem, Some(pki.ca.sign(&[], "Old", true))),
        ),
        // Mapped by the first rule to `bob smith`: a name with a space,
        // which no ACL could name, so no principal at all.
        (
            "a subject that maps to a name ACLs cannot hold",
            pki.client(&pki.ca.pem, Some(pki.ca.sign(&[], "Bob Smith", false))),
        ),
    ];
    for (what, tls) in refused {
        let got = who(&b, tls, None).await;
        assert!(got.is_err(), "{what} was admitted: {got:?}");
    }
    // The client refuses a broker its CA did not sign.
    let got = who(&b, pki.client(&pki.foreign.pem, Some(alice.clone())), None).await;
    let err = got.expect_err("a broker of another CA was trusted");
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown issuer"),
        "{err}"
    );
    // Plain HTTP/2 to the TLS port gets no answer.
    let plain = Client::connect(b.url()).await;
    let plain = match plain {
        Err(e) => Err(e.to_string()),
        Ok(c) => c
            .security()
            .who_am_i()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    assert!(plain.is_err(), "plain text was served on the TLS port");
    // The broker went on serving.
    let me = who(&b, pki.client(&pki.ca.pem, Some(alice)), None).await;
    assert_eq!(me.as_deref(), Ok("User:alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let b = start(dir.path(), &pki.broker_flags());
    let trusting = || pki.client(&pki.ca.pem, None);
    let open = connect(&b, trusting(), None).await.unwrap();
    open.admin().create_topic("t", 1, &[]).await.unwrap();

    // A certificate for the wrong name: refused by clients checking
    // "localhost", once SIGHUP has swapped it in.
    let (cert, key) = pki.ca.sign(&["other.example"], "broker", false);
    write(&pki.dir, "broker.pem", &cert);
    write(&pki.dir, "broker.key", &key);
    b.signal("HUP");
    assert_eq!(
        b.wait_stdout("strata-broker tls"),
        "strata-broker tls reloaded"
    );
    let err = who(&b, trusting(), None)
        .await
        .expect_err("a wrong-name certificate was trusted");
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );
    // The connection made before the swap goes on.
    assert_eq!(open.admin().list_topics().await.unwrap().len(), 1);

    // Files that do not load leave the last good ones serving.
    write(&pki.dir, "broker.key", "not a key");
    b.signal("HUP");
    let line = b.wait_stdout("strata-broker tls");
    assert!(
        line.starts_with("strata-broker tls reload failed") && line.contains("--tls-"),
        "{line}"
    );

    // A right one again: new connections are admitted.
    let (cert, key) = pki.ca.sign(&["localhost"], "broker", false);
    write(&pki.dir, "broker.pem", &cert);
    write(&pki.dir, "broker.key", &key);
    b.signal("HUP");
    assert_eq!(
        b.wait_stdout("strata-broker tls"),
        "strata-broker tls reloaded"
    );
    assert_eq!(
        who(&b, trusting(), None).await.as_deref(),
        Ok("User:ANONYMOUS")
    );
}

/// Reads from `s` until the broker closes it; what it said before.
fn read_to_close(s: &mut std::net::TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the broker did not close the connection: {e}"),
    }
    got
}

fn start_auth(dir: &Path, token: &str, extra: &[&str]) -> BrokerProcess {
    let token_file = write(dir, "admin.token", token);
    let mut flags = vec![
        "--auth",
        "--auth-bootstrap-token-file",
        token_file.to_str().unwrap(),
    ];
    flags.extend_from_slice(extra);
    BrokerProcess::start_in(&dir.join("data"), &flags)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_before_they_authenticate() {
    let admin_token = generate_token().unwrap();

    // TLS: a client that never finishes its handshake is cut off, and
    // headers over request_headers_bytes_max are refused before they are
    // authenticated (HTTP 431); the broker serves on.
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let mut flags: Vec<String> = pki.broker_flags();
    flags.extend(
        [
            "--tls-handshake-timeout-ms",
            "300",
            "--request-headers-bytes-max",
            "8192",
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let b = start_auth(dir.path(), &admin_token, &refs);
    let mut silent = std::net::TcpStream::connect(b.addr).unwrap();
    read_to_close(&mut silent);
    assert!(
        b.stderr().contains("tls_handshake_timeout_ms"),
        "no audit line names the limit"
    );
    let admin = connect(&b, pki.client(&pki.ca.pem, None), Some(&admin_token))
        .await
        .unwrap();
    admin.admin().create_topic("t", 1, &[]).await.unwrap();
    let mut raw = v1::records_client::RecordsClient::new(admin.channel());
    let mut req = tonic::Request::new(v1::FetchRequest::default());
    req.metadata_mut()
        .insert("x-big", "a".repeat(16 * 1024).parse().unwrap());
    let err = raw.fetch(req).await.unwrap_err();
    assert!(err.message().contains("431"), "{err:?}");
    assert_eq!(admin.admin().list_topics().await.unwrap().len(), 1);

    // --auth: a connection that carries no authenticated call is closed
    // after unauthenticated_connection_ms; an authenticated one, older
    // than that by then, is served on.
    let dir = tempfile::tempdir().unwrap();
    let b = start_auth(
        dir.path(),
        &admin_token,
        &["--no-kafka", "--unauthenticated-connection-ms", "300"],
    );
    let admin = Client::connect_with(
        b.url(),
        ClientOptions {
            token: Some(Token::new(&admin_token)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    admin.admin().create_topic("t", 1, &[]).await.unwrap();
    let mut silent = std::net::TcpStream::connect(b.addr).unwrap();
    read_to_close(&mut silent);
    assert!(
        b.stderr().contains("unauthenticated_connection_ms"),
        "no audit line names the limit"
    );
    assert_eq!(admin.admin().list_topics().await.unwrap().len(), 1);

    // connections_per_ip_max: three open, the fourth closed at once (the
    // read would time out otherwise); one closed frees its place.
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(
        &dir.path().join("data"),
        &["--no-kafka", "--connections-per-ip-max", "3"],
    );
    let held: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(b.addr).unwrap())
        .collect();
    let mut over = std::net::TcpStream::connect(b.addr).unwrap();
    read_to_close(&mut over);
    assert!(
        b.stderr().contains("connections_per_ip_max"),
        "no audit line names the limit"
    );
    drop(held);
    // The broker frees the places when it reads the closes; until then a
    // new connection is refused at once, so this ends on an answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let served = match Client::connect(b.url()).await {
            Ok(c) => c.admin().list_topics().await.is_ok(),
            Err(_) => false,
        };
        if served {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no place was freed");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_tokens_is_limited_per_address() {
    let admin_token = generate_token().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = start_auth(
        dir.path(),
        &admin_token,
        &["--no-kafka", "--auth-failures-per-min-max", "3"],
    );
    let with = |token: String| {
        let url = b.url();
        async move {
            let options = ClientOptions {
                token: Some(Token::new(token)),
                ..Default::default()
            };
            let c = Client::connect_with(url, options).await.unwrap();
            c.security().who_am_i().await.map(|me| me.principal)
        }
    };
    // Good credentials are never counted.
    for _ in 0..5 {
        assert_eq!(with(admin_token.clone()).await.unwrap(), "User:admin");
    }
    // Three failures: a wrong token, and two headers that are no bearer
    // token at all (another scheme; bytes that are not text). Malformed
    // credentials count like wrong ones, or they would be free guesses.
    let err = with(generate_token().unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("invalid token"), "{err}");
    for value in [&b"Basic YWRtaW46YWRtaW4="[..], &b"Bearer \xff\xfe"[..]] {
        let channel = tonic::transport::Endpoint::from_shared(b.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let header = tonic::metadata::MetadataValue::try_from(value).unwrap();
        let mut raw = v1::security_client::SecurityClient::with_interceptor(
            channel,
            move |mut req: tonic::Request<()>| {
                req.metadata_mut().insert("authorization", header.clone());
                Ok(req)
            },
        );
        let err = raw
            .who_am_i(v1::WhoAmIRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(err.message().contains("invalid token"), "{err:?}");
    }
    // The 4th guess in the minute is refused before it is checked, and so
    // is the right token from the same address, with the limit named.
    for token in [generate_token().unwrap(), admin_token.clone()] {
        let err = with(token).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::Unauthenticated), "{err}");
        assert!(
            err.to_string().contains("auth_failures_per_min_max 3"),
            "{err}"
        );
    }
}
