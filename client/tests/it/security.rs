//! Security against the real broker binary with `--auth`: tokens (wrong,
//! unknown, expired, revoked, of a deleted user), open streams that end
//! when their token does, durability of users, tokens and ACLs across a
//! restart, and Kafka's AuthorizerIntegrationTest pattern: every RPC of
//! every service, checked complete against the descriptors, is refused
//! without its minimal ACLs (PERMISSION_DENIED naming the resource and the
//! operation) and served with them. Every wait is on an event.

use std::collections::BTreeSet;

use crate::support::BrokerProcess;
use prost::Message;
use strata_client::proto::v1;
use strata_client::security::ScramMechanism;
use strata_client::{Client, ClientOptions, ErrorReason, Token, generate_token};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Starts a broker with --auth whose first admin has `admin_token`.
fn start(dir: &std::path::Path, admin_token: &str) -> BrokerProcess {
    let file = dir.join("admin.token");
    std::fs::write(&file, admin_token).unwrap();
    BrokerProcess::start_in(
        &dir.join("data"),
        &[
            "--auth",
            "--no-kafka",
            "--auth-bootstrap-token-file",
            file.to_str().unwrap(),
            "--group-session-timeout-ms-min",
            "100",
        ],
    )
}

async fn client(b: &BrokerProcess, token: Option<&str>) -> Client {
    let options = ClientOptions {
        token: token.map(Token::new),
        ..Default::default()
    };
    Client::connect_with(b.url(), options).await.unwrap()
}

/// `authorization: Bearer <token>` on raw stubs.
#[derive(Clone)]
struct Bearer(Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

/// Raw stubs for one principal.
struct Conn {
    ch: Channel,
    bearer: Bearer,
}

impl Conn {
    async fn new(b: &BrokerProcess, token: Option<&str>) -> Self {
        Self {
            ch: b.channel().await,
            bearer: Bearer(token.map(String::from)),
        }
    }
    fn admin(&self) -> v1::admin_client::AdminClient<Svc> {
        v1::admin_client::AdminClient::with_interceptor(self.ch.clone(), self.bearer.clone())
    }
    fn records(&self) -> v1::records_client::RecordsClient<Svc> {
        v1::records_client::RecordsClient::with_interceptor(self.ch.clone(), self.bearer.clone())
    }
    fn groups(&self) -> v1::groups_client::GroupsClient<Svc> {
        v1::groups_client::GroupsClient::with_interceptor(self.ch.clone(), self.bearer.clone())
    }
    fn share(&self) -> v1::share_client::ShareClient<Svc> {
        v1::share_client::ShareClient::with_interceptor(self.ch.clone(), self.bearer.clone())
    }
    fn security(&self) -> v1::security_client::SecurityClient<Svc> {
        v1::security_client::SecurityClient::with_interceptor(self.ch.clone(), self.bearer.clone())
    }
}

fn reason(s: &Status) -> String {
    use tonic_types::StatusExt;
    s.get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn record(value: &str) -> v1::ProduceRequest {
    v1::ProduceRequest {
        acks: v1::Acks::Durable as i32,
        topics: vec![v1::TopicProduceData {
            topic: "t".into(),
            partitions: vec![v1::PartitionProduceData {
                partition: 0,
                data: Some(v1::partition_produce_data::Data::Records(v1::RecordList {
                    records: vec![v1::Record {
                        value: Some(value.as_bytes().to_vec().into()),
                        ..Default::default()
                    }],
                })),
            }],
        }],
    }
}

fn subscribe_t() -> v1::SubscribeRequest {
    v1::SubscribeRequest {
        partitions: vec![v1::SubscribePartition {
            topic: "t".into(),
            partition: 0,
            start: Some(v1::subscribe_partition::Start::Earliest(true)),
        }],
        ..Default::default()
    }
}

// Multi-threaded: `terminate` blocks this thread while the broker drains,
// and the open clients' connections must still see its GOAWAY and close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_authenticate_and_end_when_revoked_expired_or_their_user_goes() {
    let dir = tempfile::tempdir().unwrap();
    let admin_token = generate_token().unwrap();
    let mut b = start(dir.path(), &admin_token);
    let admin = client(&b, Some(&admin_token)).await;
    let me = admin.security().who_am_i().await.unwrap();
    assert_eq!(me.principal, "User:admin");
    assert!(me.super_user, "the bootstrap admin is a super user");

    // No token, a malformed one, an unknown one, a wrong secret: refused
    // before anything runs, the last three with one message.
    let none = client(&b, None)
        .await
        .admin()
        .list_topics()
        .await
        .unwrap_err();
    assert_eq!(none.code(), Some(Code::Unauthenticated), "{none}");
    assert_eq!(none.reason(), ErrorReason::AuthenticationFailed);
    let mut wrong_secret = admin_token.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == '0' { '1' } else { '0' });
    let mut messages = BTreeSet::new();
    for t in ["not-a-token", &generate_token().unwrap(), &wrong_secret] {
        let e = client(&b, Some(t))
            .await
            .admin()
            .list_topics()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(Code::Unauthenticated), "{e}");
        messages.insert(e.to_string());
    }
    assert_eq!(
        messages.len(),
        1,
        "wrong and unknown tokens look the same: {messages:?}"
    );

    let sec = admin.security();
    sec.create_user("alice").await.unwrap();
    admin.admin().create_topic("t", 1, &[]).await.unwrap();
    let conn = Conn::new(&b, Some(&admin_token)).await;
    conn.records().produce(record("r0")).await.unwrap();
    let read_t = v1::AclBinding {
        principal: "User:alice".into(),
        resource_type: v1::ResourceType::Topic as i32,
        pattern_type: v1::PatternType::Literal as i32,
        resource_name: "t".into(),
        operation: v1::AclOperation::Read as i32,
        permission: v1::AclPermission::Allow as i32,
    };
    assert_eq!(sec.create_acls(vec![read_t.clone()]).await.unwrap(), 1);

    // Revoked: an open subscription ends with UNAUTHENTICATED.
    let t1 = sec.create_token("alice", "first", 0).await.unwrap();
    let alice = Conn::new(&b, Some(&t1.text)).await;
    let mut stream = alice
        .records()
        .subscribe(subscribe_t())
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some(), "alice reads t");
    sec.revoke_token(&t1.token.id).await.unwrap();
    let ended = stream.message().await.unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended}");
    assert!(ended.message().contains("revoked"), "{ended}");
    let e = alice.records().subscribe(subscribe_t()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // Expired: the stream ends at the expiry, and so do new calls.
    let t2 = sec.create_token("alice", "short", 1_500).await.unwrap();
    let alice = Conn::new(&b, Some(&t2.text)).await;
    let mut stream = alice
        .records()
        .subscribe(subscribe_t())
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    let ended = stream.message().await.unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended}");
    assert!(ended.message().contains("expired"), "{ended}");
    let e = client(&b, Some(&t2.text))
        .await
        .security()
        .who_am_i()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("expired") && e.to_string().contains(&t2.token.id),
        "{e}"
    );

    // A deleted user's token does not work for a user made again with the
    // same name (a new id), and its open stream ends.
    let t3 = sec.create_token("alice", "third", 0).await.unwrap();
    let old = sec
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.name == "alice")
        .unwrap();
    let alice = Conn::new(&b, Some(&t3.text)).await;
    let mut stream = alice
        .records()
        .subscribe(subscribe_t())
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    sec.delete_user("alice").await.unwrap();
    assert_eq!(
        stream.message().await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let again = sec.create_user("alice").await.unwrap();
    assert_ne!(again.id, old.id, "user ids are never reused");
    let e = client(&b, Some(&t3.text))
        .await
        .security()
        .who_am_i()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::Unauthenticated), "{e}");
    let t4 = sec.create_token("alice", "fourth", 0).await.unwrap();

    // Users, tokens and ACLs survive a restart; the bootstrap file is not
    // needed again.
    b.terminate();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &["--auth", "--no-kafka"]);
    let alice = client(&b, Some(&t4.text)).await;
    assert_eq!(
        alice.security().who_am_i().await.unwrap().principal,
        "User:alice"
    );
    let alice = Conn::new(&b, Some(&t4.text)).await;
    let mut stream = alice
        .records()
        .subscribe(subscribe_t())
        .await
        .unwrap()
        .into_inner();
    assert!(
        stream.message().await.unwrap().is_some(),
        "the ACL survived"
    );
    let e = client(&b, Some(&t1.text))
        .await
        .security()
        .who_am_i()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(Code::Unauthenticated),
        "a revoked token stays revoked"
    );
    let admin = client(&b, Some(&admin_token)).await;
    let acls = admin
        .security()
        .list_acls(v1::AclFilter::default())
        .await
        .unwrap();
    assert_eq!(acls, vec![read_t]);
    // Health checks need no token (orchestrators probe without one).
    let health = tonic_health::pb::health_client::HealthClient::new(b.channel().await)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, 1);
}

/// What an RPC needs, as (resource type, name, operation).
type Need = &'static [(v1::ResourceType, &'static str, v1::AclOperation)];

/// Every RPC and its minimal ACLs for User:u. `Filtered` RPCs answer
/// without the resource instead of refusing.
fn table() -> Vec<(&'static str, Need, bool)> {
    use v1::AclOperation as O;
    use v1::ResourceType as T;
    vec![
        (
            "/strata.v1.Admin/CreateTopic",
            &[(T::Topic, "t-new", O::Create)],
            false,
        ),
        (
            "/strata.v1.Admin/DeleteTopic",
            &[(T::Topic, "t-del", O::Delete)],
            false,
        ),
        (
            "/strata.v1.Admin/ListTopics",
            &[(T::Topic, "t", O::Describe)],
            true,
        ),
        (
            "/strata.v1.Admin/DescribeTopic",
            &[(T::Topic, "t", O::Describe)],
            false,
        ),
        (
            "/strata.v1.Admin/AlterTopicConfig",
            &[(T::Topic, "t", O::AlterConfigs)],
            false,
        ),
        (
            "/strata.v1.Admin/CreatePartitions",
            &[(T::Topic, "t-grow", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Records/Produce",
            &[(T::Topic, "t", O::Write)],
            false,
        ),
        (
            "/strata.v1.Records/ProduceStream",
            &[(T::Topic, "t", O::Write)],
            false,
        ),
        (
            "/strata.v1.Records/Fetch",
            &[(T::Topic, "t", O::Read)],
            false,
        ),
        (
            "/strata.v1.Records/Subscribe",
            &[(T::Topic, "t", O::Read)],
            false,
        ),
        (
            "/strata.v1.Records/ListOffsets",
            &[(T::Topic, "t", O::Describe)],
            false,
        ),
        ("/strata.v1.Records/InitProducer", &[], false),
        (
            "/strata.v1.Groups/Heartbeat",
            &[(T::Group, "g-hb", O::Read), (T::Topic, "t", O::Describe)],
            false,
        ),
        (
            "/strata.v1.Groups/CommitOffsets",
            &[(T::Group, "g", O::Read), (T::Topic, "t", O::Read)],
            false,
        ),
        (
            "/strata.v1.Groups/FetchOffsets",
            &[(T::Group, "g", O::Describe), (T::Topic, "t", O::Describe)],
            false,
        ),
        (
            "/strata.v1.Groups/ListGroups",
            &[(T::Group, "g", O::Describe)],
            true,
        ),
        (
            "/strata.v1.Groups/DescribeGroup",
            &[(T::Group, "g", O::Describe)],
            false,
        ),
        (
            "/strata.v1.Groups/ResetOffsets",
            &[(T::Group, "g", O::Read), (T::Topic, "t", O::Read)],
            false,
        ),
        (
            "/strata.v1.Groups/DeleteGroup",
            &[(T::Group, "g-del", O::Delete)],
            false,
        ),
        (
            "/strata.v1.Share/ShareHeartbeat",
            &[
                (T::Group, "sg-hb", O::Read),
                (T::Topic, "t", O::Read),
                (T::Topic, "t.sg-hb.dlq", O::Write),
            ],
            false,
        ),
        (
            "/strata.v1.Share/ShareFetch",
            &[(T::Group, "sg", O::Read)],
            false,
        ),
        (
            "/strata.v1.Share/ShareAcknowledge",
            &[(T::Group, "sg", O::Read)],
            false,
        ),
        (
            "/strata.v1.Share/ListShareGroups",
            &[(T::Group, "sg", O::Describe)],
            true,
        ),
        (
            "/strata.v1.Share/DescribeShareGroup",
            &[(T::Group, "sg", O::Describe)],
            false,
        ),
        (
            "/strata.v1.Share/ResetShareGroup",
            &[(T::Group, "sg", O::Read), (T::Topic, "t", O::Read)],
            false,
        ),
        (
            "/strata.v1.Share/DeleteShareGroup",
            &[(T::Group, "sg-del", O::Delete)],
            false,
        ),
        ("/strata.v1.Security/WhoAmI", &[], false),
        (
            "/strata.v1.Security/CreateUser",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/DeleteUser",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/ListUsers",
            &[(T::Cluster, "kafka-cluster", O::Describe)],
            false,
        ),
        (
            "/strata.v1.Security/SetScramCredential",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/DeleteScramCredential",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/SetPlainCredential",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/DeletePlainCredential",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/CreateToken",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/RevokeToken",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/ListTokens",
            &[(T::Cluster, "kafka-cluster", O::Describe)],
            false,
        ),
        (
            "/strata.v1.Security/CreateAcls",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/DeleteAcls",
            &[(T::Cluster, "kafka-cluster", O::Alter)],
            false,
        ),
        (
            "/strata.v1.Security/ListAcls",
            &[(T::Cluster, "kafka-cluster", O::Describe)],
            false,
        ),
        (
            "/strata.v1.Security/SetQuota",
            &[(T::Cluster, "kafka-cluster", O::AlterConfigs)],
            false,
        ),
        (
            "/strata.v1.Security/ListQuotas",
            &[(T::Cluster, "kafka-cluster", O::DescribeConfigs)],
            false,
        ),
    ]
}

fn per_partition(e: Option<v1::Error>) -> Result<(), Status> {
    match e {
        Some(e) => Err(Status::new(Code::from(e.code), e.message)),
        None => Ok(()),
    }
}

/// Makes the call at `path` as `c`; for a Filtered RPC, Ok(false) when
/// the answer lacks the resource. `n` makes names fresh per attempt.
async fn call(path: &str, c: &Conn, revocable: &str) -> Result<bool, Status> {
    let rpc = path.rsplit('/').next().unwrap();
    let topic = |name: &str| v1::TopicPartitions {
        topic: name.into(),
        partitions: vec![0],
    };
    match rpc {
        "CreateTopic" => {
            c.admin()
                .create_topic(v1::CreateTopicRequest {
                    name: "t-new".into(),
                    partitions: 1,
                    config: Default::default(),
                })
                .await?;
        }
        "DeleteTopic" => {
            c.admin()
                .delete_topic(v1::DeleteTopicRequest {
                    name: "t-del".into(),
                })
                .await?;
        }
        "ListTopics" => {
            let r = c
                .admin()
                .list_topics(v1::ListTopicsRequest {})
                .await?
                .into_inner();
            return Ok(r.topics.iter().any(|t| t.name == "t"));
        }
        "DescribeTopic" => {
            c.admin()
                .describe_topic(v1::DescribeTopicRequest { name: "t".into() })
                .await?;
        }
        "AlterTopicConfig" => {
            c.admin()
                .alter_topic_config(v1::AlterTopicConfigRequest {
                    name: "t".into(),
                    config: [("retention.ms".to_string(), "86400000".to_string())].into(),
                })
                .await?;
        }
        "CreatePartitions" => {
            c.admin()
                .create_partitions(v1::CreatePartitionsRequest {
                    name: "t-grow".into(),
                    partitions: 2,
                })
                .await?;
        }
        "Produce" => {
            let r = c.records().produce(record("x")).await?.into_inner();
            per_partition(r.topics[0].partitions[0].error.clone())?;
        }
        "ProduceStream" => {
            let msg = v1::ProduceStreamRequest {
                id: 1,
                request: Some(record("y")),
            };
            let mut s = c
                .records()
                .produce_stream(tokio_stream::iter(vec![msg]))
                .await?
                .into_inner();
            let answer = s.message().await?.expect("an answer");
            per_partition(answer.error)?;
        }
        "Fetch" => {
            c.records()
                .fetch(v1::FetchRequest {
                    topics: vec![v1::FetchTopic {
                        topic: "t".into(),
                        partitions: vec![v1::FetchPartition {
                            partition: 0,
                            offset: 0,
                            max_bytes: 1 << 20,
                        }],
                    }],
                    ..Default::default()
                })
                .await?;
        }
        "Subscribe" => {
            let mut s = c.records().subscribe(subscribe_t()).await?.into_inner();
            s.message().await?.expect("a first message");
        }
        "ListOffsets" => {
            let r = c
                .records()
                .list_offsets(v1::ListOffsetsRequest {
                    partitions: vec![v1::ListOffsetsPartition {
                        topic: "t".into(),
                        partition: 0,
                        spec: Some(v1::list_offsets_partition::Spec::Latest(true)),
                    }],
                })
                .await?
                .into_inner();
            per_partition(r.partitions[0].error.clone())?;
        }
        "InitProducer" => {
            c.records()
                .init_producer(v1::InitProducerRequest {})
                .await?;
        }
        "Heartbeat" => {
            let joined = c
                .groups()
                .heartbeat(v1::HeartbeatRequest {
                    group: "g-hb".into(),
                    topics: vec!["t".into()],
                    session_timeout_ms: 100,
                    ..Default::default()
                })
                .await?
                .into_inner();
            c.groups()
                .heartbeat(v1::HeartbeatRequest {
                    group: "g-hb".into(),
                    member_id: joined.member_id,
                    member_epoch: -1,
                    ..Default::default()
                })
                .await?;
        }
        "CommitOffsets" => {
            c.groups()
                .commit_offsets(v1::CommitOffsetsRequest {
                    group: "g".into(),
                    partitions: vec![v1::CommitPartition {
                        topic: "t".into(),
                        partition: 0,
                        offset: 1,
                        metadata: String::new(),
                    }],
                    ..Default::default()
                })
                .await?;
        }
        "FetchOffsets" => {
            c.groups()
                .fetch_offsets(v1::FetchOffsetsRequest {
                    group: "g".into(),
                    partitions: vec![topic("t")],
                })
                .await?;
        }
        "ListGroups" => {
            let r = c
                .groups()
                .list_groups(v1::ListGroupsRequest {})
                .await?
                .into_inner();
            return Ok(r.groups.iter().any(|g| g.group == "g"));
        }
        "DescribeGroup" => {
            c.groups()
                .describe_group(v1::DescribeGroupRequest { group: "g".into() })
                .await?;
        }
        "ResetOffsets" => {
            c.groups()
                .reset_offsets(v1::ResetOffsetsRequest {
                    group: "g".into(),
                    topic: "t".into(),
                    to: Some(v1::reset_offsets_request::To::Earliest(true)),
                    ..Default::default()
                })
                .await?;
        }
        "DeleteGroup" => {
            c.groups()
                .delete_group(v1::DeleteGroupRequest {
                    group: "g-del".into(),
                })
                .await?;
        }
        "ShareHeartbeat" => {
            let joined = c
                .share()
                .share_heartbeat(v1::ShareHeartbeatRequest {
                    group: "sg-hb".into(),
                    topics: vec!["t".into()],
                    ..Default::default()
                })
                .await?
                .into_inner();
            c.share()
                .share_heartbeat(v1::ShareHeartbeatRequest {
                    group: "sg-hb".into(),
                    member_id: joined.member_id,
                    leave: true,
                    ..Default::default()
                })
                .await?;
        }
        "ShareFetch" | "ShareAcknowledge" => {
            // Authorized, the call reaches the group: a member id that is
            // not in it is refused as such (not as PERMISSION_DENIED).
            let r = if rpc == "ShareFetch" {
                c.share()
                    .share_fetch(v1::ShareFetchRequest {
                        group: "sg".into(),
                        member_id: "nobody".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            } else {
                c.share()
                    .share_acknowledge(v1::ShareAcknowledgeRequest {
                        group: "sg".into(),
                        member_id: "nobody".into(),
                        acks: vec![],
                    })
                    .await
                    .map(drop)
            };
            match r {
                Err(e) if e.code() == Code::PermissionDenied => return Err(e),
                _ => {}
            }
        }
        "ListShareGroups" => {
            let r = c
                .share()
                .list_share_groups(v1::ListShareGroupsRequest {})
                .await?
                .into_inner();
            return Ok(r.groups.iter().any(|g| g.group == "sg"));
        }
        "DescribeShareGroup" => {
            c.share()
                .describe_share_group(v1::DescribeShareGroupRequest { group: "sg".into() })
                .await?;
        }
        "ResetShareGroup" => {
            c.share()
                .reset_share_group(v1::ResetShareGroupRequest {
                    group: "sg".into(),
                    topic: "t".into(),
                    to: Some(v1::reset_share_group_request::To::Earliest(true)),
                    ..Default::default()
                })
                .await?;
        }
        "DeleteShareGroup" => {
            c.share()
                .delete_share_group(v1::DeleteShareGroupRequest {
                    group: "sg-del".into(),
                })
                .await?;
        }
        "WhoAmI" => {
            c.security().who_am_i(v1::WhoAmIRequest {}).await?;
        }
        "CreateUser" => {
            c.security()
                .create_user(v1::CreateUserRequest { name: "v".into() })
                .await?;
        }
        "DeleteUser" => {
            c.security()
                .delete_user(v1::DeleteUserRequest {
                    name: "v-del".into(),
                })
                .await?;
        }
        "ListUsers" => {
            c.security().list_users(v1::ListUsersRequest {}).await?;
        }
        "SetScramCredential" => {
            c.security()
                .set_scram_credential(v1::SetScramCredentialRequest {
                    user: "u".into(),
                    mechanism: v1::ScramMechanism::ScramSha256 as i32,
                    iterations: 4096,
                    salt: vec![7; 16].into(),
                    salted_password: vec![9; 32].into(),
                })
                .await?;
        }
        "DeleteScramCredential" => {
            c.security()
                .delete_scram_credential(v1::DeleteScramCredentialRequest {
                    user: "u".into(),
                    mechanism: v1::ScramMechanism::ScramSha256 as i32,
                })
                .await?;
        }
        "SetPlainCredential" => {
            c.security()
                .set_plain_credential(v1::SetPlainCredentialRequest {
                    user: "u".into(),
                    argon2id_phc: strata_client::security::plain_hash("pw", 7168, 1).unwrap(),
                })
                .await?;
        }
        "DeletePlainCredential" => {
            c.security()
                .delete_plain_credential(v1::DeletePlainCredentialRequest { user: "u".into() })
                .await?;
        }
        "CreateToken" => {
            c.security()
                .create_token(v1::CreateTokenRequest {
                    user: "u".into(),
                    ..Default::default()
                })
                .await?;
        }
        "RevokeToken" => {
            c.security()
                .revoke_token(v1::RevokeTokenRequest {
                    id: revocable.into(),
                })
                .await?;
        }
        "ListTokens" => {
            c.security()
                .list_tokens(v1::ListTokensRequest::default())
                .await?;
        }
        "CreateAcls" | "DeleteAcls" | "ListAcls" => {
            let other = v1::AclBinding {
                principal: "User:zzz".into(),
                resource_type: v1::ResourceType::Topic as i32,
                pattern_type: v1::PatternType::Literal as i32,
                resource_name: "t".into(),
                operation: v1::AclOperation::Read as i32,
                permission: v1::AclPermission::Allow as i32,
            };
            let filter = Some(v1::AclFilter {
                principal: "User:zzz".into(),
                ..Default::default()
            });
            let s = c.security();
            match rpc {
                "CreateAcls" => drop(
                    s.clone()
                        .create_acls(v1::CreateAclsRequest { acls: vec![other] })
                        .await?,
                ),
                "DeleteAcls" => drop(
                    s.clone()
                        .delete_acls(v1::DeleteAclsRequest { filter })
                        .await?,
                ),
                _ => drop(s.clone().list_acls(v1::ListAclsRequest { filter }).await?),
            }
        }
        "SetQuota" => {
            c.security()
                .set_quota(v1::SetQuotaRequest {
                    quota: Some(v1::Quota {
                        principal: "User:zzz".into(),
                        client_id: String::new(),
                        rates: Some(v1::QuotaRates {
                            requests_per_sec: Some(1000),
                            ..Default::default()
                        }),
                    }),
                })
                .await?;
        }
        "ListQuotas" => {
            c.security().list_quotas(v1::ListQuotasRequest {}).await?;
        }
        other => panic!("no call for {other}: add it to the table"),
    }
    Ok(true)
}

fn binding(need: &(v1::ResourceType, &str, v1::AclOperation)) -> v1::AclBinding {
    v1::AclBinding {
        principal: "User:u".into(),
        resource_type: need.0 as i32,
        pattern_type: v1::PatternType::Literal as i32,
        resource_name: need.1.into(),
        operation: need.2 as i32,
        permission: v1::AclPermission::Allow as i32,
    }
}

/// The words a denial uses for a need: `Read Topic:t`.
fn words(need: &(v1::ResourceType, &str, v1::AclOperation)) -> String {
    let op = match need.2 {
        v1::AclOperation::AlterConfigs => "AlterConfigs".to_string(),
        v1::AclOperation::DescribeConfigs => "DescribeConfigs".to_string(),
        o => {
            let n = o
                .as_str_name()
                .trim_start_matches("ACL_OPERATION_")
                .to_lowercase();
            let mut c = n.chars();
            c.next().unwrap().to_uppercase().chain(c).collect()
        }
    };
    let rt = match need.0 {
        v1::ResourceType::Topic => "Topic",
        v1::ResourceType::Group => "Group",
        _ => "Cluster",
    };
    format!("{op} {rt}:{}", need.1)
}

#[tokio::test]
async fn every_rpc_is_refused_without_its_acls_and_served_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let admin_token = generate_token().unwrap();
    let b = start(dir.path(), &admin_token);
    let admin = client(&b, Some(&admin_token)).await;
    let root = Conn::new(&b, Some(&admin_token)).await;

    // The table covers every RPC in the descriptors.
    let fds =
        prost_types::FileDescriptorSet::decode(strata_client::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut described = BTreeSet::new();
    for f in &fds.file {
        for s in &f.service {
            for m in &s.method {
                described.insert(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
            }
        }
    }
    let tabled: BTreeSet<String> = table().iter().map(|(p, _, _)| p.to_string()).collect();
    assert_eq!(
        described, tabled,
        "the table must list every RPC of every service"
    );

    // What the calls act on, made by the admin.
    let a = admin.admin();
    for t in ["t", "t-del", "t-grow"] {
        a.create_topic(t, 1, &[]).await.unwrap();
    }
    root.records().produce(record("r0")).await.unwrap();
    for g in ["g", "g-del"] {
        root.groups()
            .commit_offsets(v1::CommitOffsetsRequest {
                group: g.into(),
                partitions: vec![v1::CommitPartition {
                    topic: "t".into(),
                    partition: 0,
                    offset: 0,
                    metadata: String::new(),
                }],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for g in ["sg", "sg-del"] {
        let j = root
            .share()
            .share_heartbeat(v1::ShareHeartbeatRequest {
                group: g.into(),
                topics: vec!["t".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        root.share()
            .share_heartbeat(v1::ShareHeartbeatRequest {
                group: g.into(),
                member_id: j.member_id,
                leave: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let sec = admin.security();
    sec.create_user("u").await.unwrap();
    let u_token = sec.create_token("u", "table", 0).await.unwrap().text;
    let u = Conn::new(&b, Some(&u_token)).await;
    let everything_of_u = v1::AclFilter {
        principal: "User:u".into(),
        ..Default::default()
    };

    for (path, needs, filtered) in table() {
        // Fresh resources for the calls that consume them.
        match path.rsplit('/').next().unwrap() {
            "DeleteUser" => drop(sec.create_user("v-del").await.unwrap()),
            "CreateUser" => drop(sec.delete_user("v").await),
            "CreateTopic" => drop(a.delete_topic("t-new").await),
            "DeletePlainCredential" => drop(sec.set_plain_credential("u", "pw").await.unwrap()),
            "DeleteScramCredential" => drop(
                sec.set_scram_credential("u", ScramMechanism::ScramSha256, "pw", 4096)
                    .await
                    .unwrap(),
            ),
            _ => {}
        }
        let revocable = sec
            .create_token("u", "to revoke", 0)
            .await
            .unwrap()
            .token
            .id;
        sec.delete_acls(everything_of_u.clone()).await.unwrap();
        if !needs.is_empty() {
            let refused = call(path, &u, &revocable).await;
            if filtered {
                assert!(!refused.unwrap(), "{path}: listed without Describe");
            } else {
                let e = refused.expect_err(&format!("{path} served without its ACLs"));
                assert_eq!(e.code(), Code::PermissionDenied, "{path}: {e}");
                assert!(
                    needs.iter().any(|n| e.message().contains(&words(n))),
                    "{path}: {e} names none of {needs:?}"
                );
                assert!(e.message().contains("User:u"), "{path}: {e}");
                if !matches!(
                    path.rsplit('/').next(),
                    Some("ProduceStream" | "ListOffsets" | "Produce")
                ) {
                    assert_eq!(reason(&e), "NOT_AUTHORIZED", "{path}");
                }
            }
            // One ACL short of the set is still refused.
            if needs.len() > 1 {
                sec.create_acls(needs[1..].iter().map(binding).collect())
                    .await
                    .unwrap();
                let e = call(path, &u, &revocable).await;
                assert!(
                    matches!(&e, Err(s) if s.code() == Code::PermissionDenied),
                    "{path}: served without {:?}: {e:?}",
                    needs[0]
                );
            }
        }
        sec.create_acls(needs.iter().map(binding).collect())
            .await
            .unwrap();
        let served = call(path, &u, &revocable).await;
        assert!(
            matches!(served, Ok(true)),
            "{path} with {needs:?}: {served:?}"
        );
    }
}

#[test]
fn exposed_or_adminless_configurations_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let refuse = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::broker_bin())
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = refuse(&["--listen", "0.0.0.0:0", "--no-kafka", "--no-metrics"]);
    assert!(
        e.contains("--listen 0.0.0.0:0 is not a loopback address"),
        "{e}"
    );
    assert!(e.contains("--insecure-dev"), "{e}");
    let e = refuse(&[
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "0.0.0.0:0",
        "--no-kafka",
    ]);
    assert!(e.contains("--metrics-listen 0.0.0.0:0"), "{e}");
    // The Kafka listener off loopback with --auth but no TLS: SASL
    // secrets and records in the clear.
    let e = refuse(&[
        "--listen",
        "127.0.0.1:0",
        "--kafka-listen",
        "0.0.0.0:0",
        "--auth",
        "--no-metrics",
    ]);
    assert!(
        e.contains("--kafka-listen 0.0.0.0:0") && e.contains("without TLS"),
        "{e}"
    );
    let e = refuse(&[
        "--listen",
        "127.0.0.1:0",
        "--auth",
        "--no-kafka",
        "--no-metrics",
    ]);
    assert!(
        e.contains("no user exists yet") && e.contains("strata token generate"),
        "{e}"
    );
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "password123").unwrap();
    let e = refuse(&[
        "--listen",
        "127.0.0.1:0",
        "--auth",
        "--no-kafka",
        "--no-metrics",
        "--auth-bootstrap-token-file",
        bad.to_str().unwrap(),
    ]);
    assert!(e.contains("not a Strata token"), "{e}");
}

/// Quotas, in real time: a producer over its byte rate is slowed to it
/// (the client waits the broker's throttle time and retries), a call in
/// debt is refused with RESOURCE_EXHAUSTED and a RetryInfo delay, and a
/// second principal is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_over_its_quota_is_slowed_to_it_and_no_one_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let admin_token = generate_token().unwrap();
    let file = dir.path().join("admin.token");
    std::fs::write(&file, &admin_token).unwrap();
    let b = BrokerProcess::start_in(
        &dir.path().join("data"),
        &[
            "--auth",
            "--no-kafka",
            "--auth-bootstrap-token-file",
            file.to_str().unwrap(),
            "--quota-window-ms",
            "100",
        ],
    );
    let admin = client(&b, Some(&admin_token)).await;
    admin.admin().create_topic("t", 1, &[]).await.unwrap();
    let sec = admin.security();
    let mut tokens = Vec::new();
    for u in ["alice", "bob"] {
        sec.create_user(u).await.unwrap();
        tokens.push(sec.create_token(u, "quota", 0).await.unwrap().text);
    }
    sec.create_acls(vec![v1::AclBinding {
        principal: "User:*".into(),
        resource_type: v1::ResourceType::Topic as i32,
        pattern_type: v1::PatternType::Literal as i32,
        resource_name: "t".into(),
        operation: v1::AclOperation::Write as i32,
        permission: v1::AclPermission::Allow as i32,
    }])
    .await
    .unwrap();
    let rate = 100_000u64;
    sec.set_quota(
        "User:alice",
        v1::QuotaRates {
            produce_bytes_per_sec: Some(rate),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let listed = sec.list_quotas().await.unwrap();
    assert_eq!(listed.quotas.len(), 1);
    assert_eq!(listed.quotas[0].principal, "User:alice");

    // 40 records of 5 kB, one request each: 200 kB at 100 kB/s with a
    // 10 kB bucket cannot take less than 1.9 s.
    let alice = client(&b, Some(&tokens[0])).await;
    let producer = alice.producer(strata_client::ProducerConfig::default());
    let value = "x".repeat(5_000);
    let started = std::time::Instant::now();
    for _ in 0..40 {
        producer
            .send_and_wait(strata_client::ProducerRecord::new("t").value(value.clone()))
            .await
            .expect("the producer waits out its throttling and delivers");
    }
    let took = started.elapsed();
    let floor = std::time::Duration::from_millis((200_000 - 10_000) * 1000 / rate);
    assert!(
        took >= floor,
        "200 kB at {rate} B/s went in {took:?} (< {floor:?})"
    );

    // Right after, alice's bucket is empty: a raw call is refused with the
    // wait; bob's bucket is his own.
    let raw = Conn::new(&b, Some(&tokens[0])).await;
    let big = v1::ProduceRequest {
        topics: vec![v1::TopicProduceData {
            topic: "t".into(),
            partitions: vec![v1::PartitionProduceData {
                partition: 0,
                data: Some(v1::partition_produce_data::Data::Records(v1::RecordList {
                    records: vec![v1::Record {
                        value: Some(vec![b'y'; 9_000].into()),
                        ..Default::default()
                    }],
                })),
            }],
        }],
        ..record("unused")
    };
    // Back to back, 9 kB each against 10 kB a 100 ms window: one of five
    // is refused even if this machine stalls between two of them.
    let mut refused = None;
    for _ in 0..5 {
        if let Err(e) = raw.records().produce(big.clone()).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("a producer over its quota is refused");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert_eq!(reason(&e), "THROTTLED", "{e}");
    assert!(
        e.message().contains("User:alice") && e.message().contains("ProduceBytes"),
        "{e}"
    );
    let err = strata_client::Error::from(e);
    assert!(err.is_retriable());
    let wait = err.retry_after().expect("a throttle time");
    assert!(
        wait > std::time::Duration::ZERO && wait.as_millis() <= 100,
        "{wait:?}"
    );
    let bob = Conn::new(&b, Some(&tokens[1])).await;
    bob.records()
        .produce(big)
        .await
        .expect("bob has no quota of alice's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_resolve_by_principal_and_client_id_as_kafkas_do() {
    let dir = tempfile::tempdir().unwrap();
    let admin_token = generate_token().unwrap();
    let b = start(dir.path(), &admin_token);
    let sec = client(&b, Some(&admin_token)).await.security();
    let mut tokens = Vec::new();
    for u in ["alice", "bob"] {
        sec.create_user(u).await.unwrap();
        tokens.push(sec.create_token(u, "quota", 0).await.unwrap().text);
    }
    let one_call = v1::QuotaRates {
        requests_per_sec: Some(1),
        ..Default::default()
    };
    // alice from "slow"; anyone from "shared" (one bucket for all).
    sec.set_quota_of("User:alice", "slow", one_call)
        .await
        .unwrap();
    sec.set_quota_of("", "shared", one_call).await.unwrap();
    let err = sec.set_quota_of("", "", one_call).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    let listed = sec.list_quotas().await.unwrap().quotas;
    assert_eq!(listed.len(), 2);

    let as_ = |token: &str, id: Option<&str>| {
        let options = ClientOptions {
            token: Some(Token::new(token)),
            client_id: id.map(String::from),
            ..Default::default()
        };
        let url = b.url();
        async move { Client::connect_with(url, options).await.unwrap() }
    };
    let throttled = |r: strata_client::Result<v1::WhoAmIResponse>| match r {
        Err(e) => e.code() == Some(Code::ResourceExhausted),
        Ok(_) => false,
    };
    // A bucket of one call a second: the second call at once is refused.
    let slow = as_(&tokens[0], Some("slow")).await;
    assert!(slow.security().who_am_i().await.is_ok());
    assert!(
        throttled(slow.security().who_am_i().await),
        "alice/slow over its quota"
    );
    // The same principal from another client id, or none, is not limited.
    for id in [Some("fast"), None] {
        let c = as_(&tokens[0], id).await;
        for _ in 0..3 {
            assert!(c.security().who_am_i().await.is_ok(), "alice/{id:?}");
        }
    }
    // A client-id quota is shared by every principal using that id.
    let alice_shared = as_(&tokens[0], Some("shared")).await;
    assert!(alice_shared.security().who_am_i().await.is_ok());
    let bob_shared = as_(&tokens[1], Some("shared")).await;
    assert!(
        throttled(bob_shared.security().who_am_i().await),
        "bob/shared shares alice's bucket"
    );
    // A client id over client_id_bytes_max is refused by name.
    let long = as_(&tokens[1], Some(&"x".repeat(300))).await;
    let err = long.security().who_am_i().await.unwrap_err();
    assert!(err.to_string().contains("client_id_bytes_max"), "{err}");
}
