//! The `strata.v1.Admin` service: topics. Admin operations touch files, so
//! they run on blocking threads.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_proto::v1::{self, admin_server::Admin};
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::status::{to_error, to_status};
use crate::core::Broker;
use crate::core::broker::Topic;
use crate::core::security::{Operation, Resource};

/// The Admin service.
#[derive(Debug, Clone)]
pub struct AdminService {
    broker: Arc<Broker>,
}

impl AdminService {
    /// A service over `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Broker) -> crate::core::error::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        super::blocking(&self.broker, f).await
    }
}

/// A topic id in the UUID text form (8-4-4-4-12 hex digits).
fn uuid_text(id: [u8; 16]) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A topic as the API describes it.
pub fn describe(topic: &Topic) -> v1::TopicDescription {
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| match p.stats() {
            Ok(s) => v1::PartitionDescription {
                partition: p.id(),
                log_start_offset: s.log_start as i64,
                log_end_offset: s.log_end as i64,
                high_watermark: s.high_watermark as i64,
                size_bytes: s.size_bytes,
                segment_count: s.segments,
                error: None,
            },
            Err(e) => v1::PartitionDescription {
                partition: p.id(),
                error: Some(to_error(&e)),
                ..Default::default()
            },
        })
        .collect();
    v1::TopicDescription {
        name: topic.name().to_string(),
        partitions,
        config: topic.config().to_map().into_iter().collect(),
        overridden_keys: topic.overrides().into_keys().collect(),
        topic_id: uuid_text(topic.id()),
    }
}

fn sorted(config: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    config.into_iter().collect()
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_topic(
        &self,
        req: Request<v1::CreateTopicRequest>,
    ) -> Result<Response<v1::CreateTopicResponse>, Status> {
        let c = caller(&req)?;
        let r = req.into_inner();
        // Create on the Cluster covers every topic, as in Kafka.
        if !c.allowed(Operation::Create, Resource::cluster()) {
            c.authorize(Operation::Create, Resource::topic(&r.name))?;
        }
        let topic = self
            .blocking(move |b| b.create_topic(&r.name, r.partitions, sorted(r.config)))
            .await?;
        Ok(Response::new(v1::CreateTopicResponse {
            topic: Some(describe(&topic)),
        }))
    }

    async fn delete_topic(
        &self,
        req: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        let c = caller(&req)?;
        let r = req.into_inner();
        c.authorize(Operation::Delete, Resource::topic(&r.name))?;
        self.blocking(move |b| b.delete_topic(&r.name)).await?;
        Ok(Response::new(v1::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        req: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let c = caller(&req)?;
        let topics = self
            .broker
            .topics()
            .iter()
            .filter(|t| c.allowed(Operation::Describe, Resource::topic(t.name())))
            .map(|t| v1::TopicSummary {
                name: t.name().to_string(),
                partitions: t.partitions().len() as u32,
            })
            .collect();
        Ok(Response::new(v1::ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        req: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        let c = caller(&req)?;
        let name = req.into_inner().name;
        c.authorize(Operation::Describe, Resource::topic(&name))?;
        let topic = self.broker.topic(&name).map_err(to_status)?;
        Ok(Response::new(v1::DescribeTopicResponse {
            topic: Some(describe(&topic)),
        }))
    }

    async fn alter_topic_config(
        &self,
        req: Request<v1::AlterTopicConfigRequest>,
    ) -> Result<Response<v1::AlterTopicConfigResponse>, Status> {
        let c = caller(&req)?;
        let r = req.into_inner();
        c.authorize(Operation::AlterConfigs, Resource::topic(&r.name))?;
        let topic = self
            .blocking(move |b| b.alter_topic_config(&r.name, sorted(r.config)))
            .await?;
        Ok(Response::new(v1::AlterTopicConfigResponse {
            topic: Some(describe(&topic)),
        }))
    }

    async fn create_partitions(
        &self,
        req: Request<v1::CreatePartitionsRequest>,
    ) -> Result<Response<v1::CreatePartitionsResponse>, Status> {
        let c = caller(&req)?;
        let r = req.into_inner();
        c.authorize(Operation::Alter, Resource::topic(&r.name))?;
        let topic = self
            .blocking(move |b| b.create_partitions(&r.name, r.partitions))
            .await?;
        Ok(Response::new(v1::CreatePartitionsResponse {
            topic: Some(describe(&topic)),
        }))
    }
}
