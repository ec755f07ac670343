//! gRPC server reflection, in both versions tools speak: `v1` (grpcurl,
//! current tools) and `v1alpha` (Python's grpcio-reflection, older
//! grpcurl and GUI clients), each listing our services and describing
//! them from the same descriptors.

use crate::support::BrokerProcess;
use futures::StreamExt;

/// Asks one reflection version for the service list, then for the file
/// that defines `strata.v1.Records`; returns the names and the file's
/// size. One body for both versions: their messages have the same shape.
macro_rules! ask {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new($channel);
        let reqs = vec![
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(
                    "strata.v1.Records".into(),
                )),
            },
        ];
        let mut resp = client
            .server_reflection_info(futures::stream::iter(reqs))
            .await
            .expect(concat!(stringify!($version), " reflection is served"))
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            resp.next().await.unwrap().unwrap().message_response
        else {
            panic!("expected a service list");
        };
        let Some(MessageResponse::FileDescriptorResponse(files)) =
            resp.next().await.unwrap().unwrap().message_response
        else {
            panic!("expected a file descriptor");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        (
            names,
            files
                .file_descriptor_proto
                .iter()
                .map(Vec::len)
                .sum::<usize>(),
        )
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_in_v1_and_v1alpha() {
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start_in(&dir.path().join("data"), &[]);
    let (v1_names, v1_file) = ask!(v1, b.channel().await);
    let (alpha_names, alpha_file) = ask!(v1alpha, b.channel().await);
    for names in [&v1_names, &alpha_names] {
        for service in ["strata.v1.Records", "strata.v1.Admin", "strata.v1.Groups"] {
            assert!(
                names.contains(&service.to_string()),
                "{service} in {names:?}"
            );
        }
    }
    assert!(v1_file > 0);
    assert_eq!(v1_file, alpha_file, "both describe the same file");
}
