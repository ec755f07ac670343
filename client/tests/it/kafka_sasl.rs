//! SASL and ACLs on the Kafka listener, against the real broker over raw
//! sockets with Kafka's codecs and a SCRAM client written here from RFC
//! 5802 (librdkafka's SCRAM needs OpenSSL, which CI does not build): the
//! credentials are set with `SecurityAdmin::set_scram_credential` (salted
//! on the client), logins map to `User:<name>`, the same ACLs as gRPC
//! apply at once with Kafka's error codes, nothing but ApiVersions and
//! SASL is answered before a login, failures look alike and are limited
//! per address, and SASL_SSL works with the gRPC listener's certificate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest, FetchResponse, GroupId,
    JoinGroupRequest, JoinGroupResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sha2::{Digest, Sha256, Sha512};
use strata_client::security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, ScramMechanism,
    salted_password,
};
use strata_client::{Client, ClientOptions, TlsOptions, Token, generate_token};

use crate::support::{BrokerProcess, batch_of};

/// Kafka's codes.
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// One Kafka connection, plain or TLS.
struct Wire<S> {
    s: S,
    correlation: i32,
}

impl<S: Read + Write> Wire<S> {
    fn send<T: Encodable>(&mut self, api: ApiKey, version: i16, body: &T) -> Option<()> {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("sasl-test")))
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let n = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&n.to_be_bytes());
        self.s.write_all(&buf).ok()?;
        self.s.flush().ok()
    }

    /// The answer, or `None` once the broker closed the connection.
    fn call<T: Encodable, R: Decodable>(&mut self, api: ApiKey, v: i16, body: &T) -> Option<R> {
        self.send(api, v, body)?;
        let mut size = [0u8; 4];
        self.s.read_exact(&mut size).ok()?;
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.s.read_exact(&mut frame).ok()?;
        let mut b = Bytes::from(frame);
        let h = ResponseHeader::decode(&mut b, api.response_header_version(v)).unwrap();
        assert_eq!(h.correlation_id, self.correlation);
        Some(R::decode(&mut b, v).unwrap())
    }

    /// Whether the broker has closed the connection.
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0) | Err(_))
    }
}

fn plain(addr: SocketAddr) -> Wire<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    Wire { s, correlation: 0 }
}

fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    if m == ScramMechanism::ScramSha512 {
        let mut h = Hmac::<Sha512>::new_from_slice(key).unwrap();
        h.update(data);
        h.finalize().into_bytes().to_vec()
    } else {
        let mut h = Hmac::<Sha256>::new_from_slice(key).unwrap();
        h.update(data);
        h.finalize().into_bytes().to_vec()
    }
}

fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    if m == ScramMechanism::ScramSha512 {
        Sha512::digest(data).to_vec()
    } else {
        Sha256::digest(data).to_vec()
    }
}

fn authenticate<S: Read + Write>(w: &mut Wire<S>, bytes: String) -> Result<String, (i16, String)> {
    let r: SaslAuthenticateResponse = w
        .call(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
        )
        .ok_or((-1, "closed".to_string()))?;
    if r.error_code != 0 {
        return Err((
            r.error_code,
            r.error_message.map(|m| m.to_string()).unwrap_or_default(),
        ));
    }
    Ok(String::from_utf8(r.auth_bytes.to_vec()).unwrap())
}

/// A SCRAM login as RFC 5802's client runs it; checks the broker's
/// signature too. `Err`: the broker's code and message.
fn login<S: Read + Write>(
    w: &mut Wire<S>,
    m: ScramMechanism,
    user: &str,
    password: &str,
) -> Result<(), (i16, String)> {
    let name = if m == ScramMechanism::ScramSha512 {
        "SCRAM-SHA-512"
    } else {
        "SCRAM-SHA-256"
    };
    let h: SaslHandshakeResponse = w
        .call(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(name)),
        )
        .unwrap();
    assert_eq!(h.error_code, 0, "handshake");
    let bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
    let server_first = authenticate(w, format!("n,,{bare}"))?;
    let attrs: Vec<&str> = server_first.split(',').collect();
    let nonce = attrs[0].strip_prefix("r=").unwrap();
    assert!(
        nonce.starts_with("fyko+d2lbbFgONRv9qkxdawL"),
        "{server_first}"
    );
    let salt = B64.decode(attrs[1].strip_prefix("s=").unwrap()).unwrap();
    let iterations: u32 = attrs[2].strip_prefix("i=").unwrap().parse().unwrap();
    let salted = salted_password(m, password, &salt, iterations).unwrap();
    let client_key = hmac(m, &salted, b"Client Key");
    let without = format!("c=biws,r={nonce}");
    let auth_message = format!("{bare},{server_first},{without}");
    let signature = hmac(m, &hash(m, &client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_final = authenticate(w, format!("{without},p={}", B64.encode(proof)))?;
    let expected = hmac(m, &hmac(m, &salted, b"Server Key"), auth_message.as_bytes());
    assert_eq!(
        server_final,
        format!("v={}", B64.encode(expected)),
        "the broker's signature"
    );
    Ok(())
}

/// Produce v7 of `records` to partition 0 of `topic`; `None` if the
/// connection closed.
fn produce_records<S: Read + Write>(
    w: &mut Wire<S>,
    topic: &str,
    records: Bytes,
) -> Option<ProduceResponse> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    w.call(ApiKey::Produce, 7, &req)
}

/// One small record: its partition's error code.
fn produce<S: Read + Write>(w: &mut Wire<S>, topic: &str) -> Option<i16> {
    let r = produce_records(w, topic, batch_of("k", 1))?;
    Some(r.responses[0].partition_responses[0].error_code)
}

fn topics_listed<S: Read + Write>(w: &mut Wire<S>) -> Vec<String> {
    let r: MetadataResponse = w
        .call(
            ApiKey::Metadata,
            9,
            &MetadataRequest::default().with_topics(None),
        )
        .unwrap();
    let mut names: Vec<String> = r
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    names.sort();
    names
}

fn start(dir: &std::path::Path, admin_token: &str, extra: &[&str]) -> BrokerProcess {
    let file = dir.join("admin.token");
    std::fs::write(&file, admin_token).unwrap();
    let mut flags = vec![
        "--auth",
        "--auth-bootstrap-token-file",
        file.to_str().unwrap(),
    ];
    flags.extend_from_slice(extra);
    BrokerProcess::start_in(&dir.join("data"), &flags)
}

async fn admin(url: String, token: &str, tls: Option<TlsOptions>) -> Client {
    let options = ClientOptions {
        token: Some(Token::new(token)),
        tls,
        ..Default::default()
    };
    Client::connect_with(url, options).await.unwrap()
}

fn acl(principal: &str, t: ResourceType, name: &str, op: AclOperation) -> AclBinding {
    AclBinding {
        principal: principal.into(),
        resource_type: t as i32,
        pattern_type: PatternType::Literal as i32,
        resource_name: name.into(),
        operation: op as i32,
        permission: AclPermission::Allow as i32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logins_run_as_their_user_under_the_same_acls() {
    let dir = tempfile::tempdir().unwrap();
    let token = generate_token().unwrap();
    let b = start(dir.path(), &token, &["--auth-failures-per-min-max", "4"]);
    let addr = b.kafka_addr.unwrap();
    let admin = admin(b.url(), &token, None).await;
    let sec = admin.security();
    sec.create_user("alice").await.unwrap();
    let u = sec
        .set_scram_credential("alice", ScramMechanism::ScramSha256, "alice-pw", 4096)
        .await
        .unwrap();
    assert_eq!(u.scram_credentials.len(), 1);
    assert_eq!(u.scram_credentials[0].iterations, 4096);
    for t in ["orders", "secret"] {
        admin.admin().create_topic(t, 1, &[]).await.unwrap();
    }

    // Before a login: ApiVersions (listing SASL), and nothing else.
    let mut w = plain(addr);
    let v: ApiVersionsResponse = w
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .unwrap();
    assert!(
        v.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::SaslHandshake as i16)
    );
    let r: Option<MetadataResponse> = w.call(
        ApiKey::Metadata,
        9,
        &MetadataRequest::default().with_topics(None),
    );
    assert!(r.is_none(), "Metadata was answered before a login");
    // PLAIN is not served without TLS: the answer lists what is.
    let mut w = plain(addr);
    let h: SaslHandshakeResponse = w
        .call(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .unwrap();
    assert_eq!(h.error_code, UNSUPPORTED_SASL_MECHANISM);
    let listed: Vec<String> = h.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(listed, ["SCRAM-SHA-256", "SCRAM-SHA-512"]);

    // A login runs as User:alice, with no ACLs yet: nothing is listed or
    // writable.
    let mut alice = plain(addr);
    login(&mut alice, ScramMechanism::ScramSha256, "alice", "alice-pw").unwrap();
    assert!(topics_listed(&mut alice).is_empty());
    assert_eq!(
        produce(&mut alice, "orders"),
        Some(TOPIC_AUTHORIZATION_FAILED)
    );
    // ACLs added over gRPC apply at once, on the open connection.
    sec.create_acls(vec![acl(
        "User:alice",
        ResourceType::Topic,
        "orders",
        AclOperation::Write,
    )])
    .await
    .unwrap();
    assert_eq!(produce(&mut alice, "orders"), Some(0));
    assert_eq!(
        topics_listed(&mut alice),
        ["orders"],
        "Write implies Describe"
    );
    // Each resource type refuses with its own code.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("secret")))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let f: FetchResponse = alice.call(ApiKey::Fetch, 11, &fetch).unwrap();
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")),
        ]);
    let j: JoinGroupResponse = alice.call(ApiKey::JoinGroup, 5, &join).unwrap();
    assert_eq!(j.error_code, GROUP_AUTHORIZATION_FAILED);
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("new")))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let c: CreateTopicsResponse = alice.call(ApiKey::CreateTopics, 5, &create).unwrap();
    assert_eq!(c.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("0")),
    ]);
    let d: DescribeConfigsResponse = alice.call(ApiKey::DescribeConfigs, 2, &describe).unwrap();
    assert_eq!(d.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(
        admin
            .admin()
            .list_topics()
            .await
            .unwrap()
            .iter()
            .all(|t| t.name != "new"),
        "a refused CreateTopics created the topic"
    );

    // Deleting the user ends its open session.
    sec.delete_user("alice").await.unwrap();
    assert_eq!(
        produce(&mut alice, "orders"),
        None,
        "served after its user was deleted"
    );

    // A wrong password, an unknown user and a mechanism without a
    // credential fail alike, and each closes its connection. (The limit
    // counts per address, so the admin's calls from here on would be
    // refused too.)
    sec.create_user("carol").await.unwrap();
    sec.set_scram_credential("carol", ScramMechanism::ScramSha256, "carol-pw", 4096)
        .await
        .unwrap();
    let mut messages = Vec::new();
    for (m, user, pw) in [
        (ScramMechanism::ScramSha256, "carol", "guess"),
        (ScramMechanism::ScramSha256, "alice", "alice-pw"),
        (ScramMechanism::ScramSha512, "carol", "carol-pw"),
        (ScramMechanism::ScramSha256, "carol", "guess-2"),
    ] {
        let mut w = plain(addr);
        let (code, message) = login(&mut w, m, user, pw).unwrap_err();
        assert_eq!(code, SASL_AUTHENTICATION_FAILED, "{user}: {message}");
        assert!(w.closed(), "{user}: open after a failed login");
        messages.push(message.replace("SCRAM-SHA-512", "SCRAM-SHA-256"));
    }
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:?}");
    assert!(messages[0].contains("invalid credentials"), "{messages:?}");
    // Four failures in the minute: the right password is refused too,
    // the limit named.
    let (_, message) = login(
        &mut plain(addr),
        ScramMechanism::ScramSha256,
        "carol",
        "carol-pw",
    )
    .unwrap_err();
    assert!(message.contains("auth_failures_per_min_max 4"), "{message}");
}

#[test]
fn frames_before_a_login_are_small_and_connections_that_never_log_in_close() {
    let dir = tempfile::tempdir().unwrap();
    let token = generate_token().unwrap();
    let b = start(
        dir.path(),
        &token,
        &["--unauthenticated-connection-ms", "300"],
    );
    let addr = b.kafka_addr.unwrap();
    // 70 KiB before a login: over sasl_request_bytes_max (64 KiB).
    let mut w = plain(addr);
    let mut frame = (70i32 << 10).to_be_bytes().to_vec();
    frame.extend_from_slice(&[0u8; 16]);
    w.s.write_all(&frame).unwrap();
    assert!(w.closed());
    // A connection that only asks ApiVersions is closed when its time to
    // log in runs out (the read returns once the broker closes it).
    let mut w = plain(addr);
    let _: ApiVersionsResponse = w
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .unwrap();
    assert!(w.closed());
    let log = b.stderr();
    assert!(log.contains("sasl_request_bytes_max"), "{log}");
    assert!(log.contains("unauthenticated_connection_ms"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_logs_in_over_the_brokers_certificate() {
    use rustls::pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::tls::Pki::new(dir.path());
    let token = generate_token().unwrap();
    let b = start(
        dir.path(),
        &token,
        &[
            "--tls-cert",
            pki.cert_file.to_str().unwrap(),
            "--tls-key",
            pki.key_file.to_str().unwrap(),
        ],
    );
    let addr = b.kafka_addr.unwrap();
    let tls = TlsOptions {
        ca_pem: Some(pki.ca.pem.clone().into_bytes()),
        identity: None,
        server_name: Some("localhost".into()),
    };
    let admin = admin(format!("https://{}", b.addr), &token, Some(tls)).await;
    let sec = admin.security();
    sec.create_user("bob").await.unwrap();
    sec.set_scram_credential("bob", ScramMechanism::ScramSha512, "bob-pw", 8192)
        .await
        .unwrap();
    admin.admin().create_topic("t", 1, &[]).await.unwrap();
    sec.create_acls(vec![acl(
        "User:bob",
        ResourceType::Topic,
        "t",
        AclOperation::Write,
    )])
    .await
    .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(pki.ca.pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let config = Arc::new(config);
    let tls_wire = || {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let conn =
            rustls::ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap();
        Wire {
            s: rustls::StreamOwned::new(conn, tcp),
            correlation: 0,
        }
    };
    let mut w = tls_wire();
    login(&mut w, ScramMechanism::ScramSha512, "bob", "bob-pw").unwrap();
    assert_eq!(produce(&mut w, "t"), Some(0));

    // PLAIN, offered on TLS connections only, over the Argon2id hash.
    sec.set_plain_credential("bob", "bob-plain").await.unwrap();
    let users = sec.list_users().await.unwrap();
    assert!(users.iter().any(|u| u.name == "bob" && u.plain_credential));
    let plain_login = |password: &str| {
        let mut w = tls_wire();
        let h: SaslHandshakeResponse = w
            .call(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            )
            .unwrap();
        assert_eq!(h.error_code, 0);
        assert!(h.mechanisms.iter().any(|m| m.as_str() == "PLAIN"));
        let r: SaslAuthenticateResponse = w
            .call(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default()
                    .with_auth_bytes(Bytes::from(format!("\0bob\0{password}"))),
            )
            .unwrap();
        (r.error_code, w)
    };
    let (code, mut w) = plain_login("bob-plain");
    assert_eq!(code, 0);
    assert_eq!(produce(&mut w, "t"), Some(0));
    let (code, mut w) = plain_login("wrong");
    assert_eq!(code, SASL_AUTHENTICATION_FAILED);
    assert!(w.closed());
    // Plain text to the TLS port gets no answer.
    let mut p = plain(addr);
    let r: Option<ApiVersionsResponse> =
        p.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(r.is_none(), "plain text was served on the TLS Kafka port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_over_its_byte_quota_is_throttled_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let token = generate_token().unwrap();
    let b = start(dir.path(), &token, &[]);
    let addr = b.kafka_addr.unwrap();
    let admin = admin(b.url(), &token, None).await;
    let sec = admin.security();
    for u in ["alice", "bob"] {
        sec.create_user(u).await.unwrap();
        sec.set_scram_credential(u, ScramMechanism::ScramSha256, "pw", 4096)
            .await
            .unwrap();
    }
    admin.admin().create_topic("t", 1, &[]).await.unwrap();
    sec.create_acls(vec![acl(
        "User:*",
        ResourceType::Topic,
        "t",
        AclOperation::Write,
    )])
    .await
    .unwrap();
    // 20 kB/s, a bucket of one second's worth.
    let rates = strata_client::security::QuotaRates {
        produce_bytes_per_sec: Some(20_000),
        ..Default::default()
    };
    sec.set_quota("User:alice", rates).await.unwrap();
    let mut batch = strata_client::proto::BatchBuilder::new();
    batch.push(1_700_000_000_000, None, Some(&[7u8; 15_000][..]), &[]);
    let records = batch.finish();

    // Three 15 kB produces, each sent when the last is answered: the
    // first fits the bucket, the second leaves it 10 kB in debt (about
    // 500 ms at 20 kB/s, a little more for the batch's framing), and the
    // third is not read until that is paid.
    let run = |user: &'static str| {
        let records = records.clone();
        move || {
            let mut w = plain(addr);
            login(&mut w, ScramMechanism::ScramSha256, user, "pw").unwrap();
            (0..3)
                .map(|_| {
                    let sent = std::time::Instant::now();
                    let r = produce_records(&mut w, "t", records.clone()).unwrap();
                    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
                    (r.throttle_time_ms, sent.elapsed())
                })
                .collect::<Vec<_>>()
        }
    };
    let alice = tokio::task::spawn_blocking(run("alice")).await.unwrap();
    assert_eq!(alice[0].0, 0, "{alice:?}");
    assert!((300..=600).contains(&alice[1].0), "{alice:?}");
    assert!(alice[2].0 > 0, "{alice:?}");
    assert!(
        alice[2].1 >= Duration::from_millis(300),
        "the connection was not muted: {alice:?}"
    );
    // Another principal has no quota and is never throttled.
    let bob = tokio::task::spawn_blocking(run("bob")).await.unwrap();
    assert!(bob.iter().all(|(t, _)| *t == 0), "{bob:?}");
}
