//! confluent-kafka, the Python client on librdkafka (whose wheel is built
//! with OpenSSL, so it has SCRAM and TLS, unlike the `rdkafka` crate our
//! other Kafka tests build without OpenSSL), against the real broker over
//! `security.protocol=SASL_SSL` with `sasl.mechanism=SCRAM-SHA-256`: it
//! produces, consumes in a group, and is refused with a wrong password;
//! and it produces with `sasl.mechanism=PLAIN` over the same TLS.
//! The script is `py/confluent_sasl.py`; confluent-kafka is installed
//! with pip, pinned, into cargo's target directory the first time (once
//! per clean clone).

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_client::security::ScramMechanism;
use strata_client::security::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
use strata_client::{Client, ClientOptions, TlsOptions, Token, generate_token};

use crate::support::BrokerProcess;

const CONFLUENT_KAFKA: &str = "confluent-kafka==2.16.1";

/// Where confluent-kafka is importable from, installing it if need be.
fn confluent_kafka() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("confluent-kafka-2.16.1");
    let importable = |d: &Path| {
        Command::new("python3")
            .env("PYTHONPATH", d)
            .args(["-c", "import confluent_kafka"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable(&dir) {
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&dir)
            .arg(CONFLUENT_KAFKA)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "pip install {CONFLUENT_KAFKA} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

fn all(t: ResourceType, name: &str) -> AclBinding {
    AclBinding {
        principal: "User:carol".into(),
        resource_type: t as i32,
        pattern_type: PatternType::Literal as i32,
        resource_name: name.into(),
        operation: AclOperation::All as i32,
        permission: AclPermission::Allow as i32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_produces_and_consumes_over_sasl_ssl_scram() {
    let python_path = tokio::task::spawn_blocking(confluent_kafka).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::tls::Pki::new(dir.path());
    let token = generate_token().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, &token).unwrap();
    let b = BrokerProcess::start_in(
        &dir.path().join("data"),
        &[
            "--auth",
            "--auth-bootstrap-token-file",
            token_file.to_str().unwrap(),
            "--tls-cert",
            pki.cert_file.to_str().unwrap(),
            "--tls-key",
            pki.key_file.to_str().unwrap(),
        ],
    );
    let options = ClientOptions {
        token: Some(Token::new(&token)),
        tls: Some(TlsOptions {
            ca_pem: Some(pki.ca.pem.clone().into_bytes()),
            identity: None,
            server_name: Some("localhost".into()),
        }),
        ..Default::default()
    };
    let admin = Client::connect_with(format!("https://{}", b.addr), options)
        .await
        .unwrap();
    let sec = admin.security();
    sec.create_user("carol").await.unwrap();
    sec.set_scram_credential("carol", ScramMechanism::ScramSha256, "carol-pw", 4096)
        .await
        .unwrap();
    sec.set_plain_credential("carol", "carol-plain")
        .await
        .unwrap();
    admin.admin().create_topic("orders", 1, &[]).await.unwrap();
    sec.create_acls(vec![
        all(ResourceType::Topic, "orders"),
        all(ResourceType::Group, "g"),
    ])
    .await
    .unwrap();
    let ca_file = dir.path().join("ca.pem");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/py/confluent_sasl.py");
    let kafka = b.kafka_addr.unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .env("PYTHONPATH", python_path)
            .env("BOOTSTRAP", kafka.to_string())
            .env("CA_FILE", ca_file)
            .env("SASL_USER", "carol")
            .env("SASL_PASSWORD", "carol-pw")
            .env("PLAIN_PASSWORD", "carol-plain")
            .env("TOPIC", "orders")
            .env("GROUP", "g")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the script failed: {stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["delivered"], 10, "{r}\n{stderr}");
    assert_eq!(r["unflushed"], 0, "{r}");
    let want: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    assert_eq!(r["consumed"], serde_json::json!(want), "{r}\n{stderr}");
    assert_eq!(r["bad_delivered"], 0, "{r}");
    assert_eq!(r["bad_auth_error"], true, "{r}");
    assert_eq!(r["plain_delivered"], 1, "{r}\n{stderr}");
}
