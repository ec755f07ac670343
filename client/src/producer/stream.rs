//! The producer's one ordered stream to the broker (`Records.ProduceStream`).
//!
//! Requests go out in the order [`Session::send`] is called, on one HTTP/2
//! stream, and the broker writes them to the log in that order: that is
//! what lets a partition keep several batches in flight without them ever
//! being reordered. Answers come back tagged with the request's id, in any
//! order, and are handed to the request's waiting sender.
//!
//! When the stream ends or fails, every request still waiting is failed
//! with that (retriable) error and the session is dead; the producer opens
//! a new one for its next request. Whether a failed request's batch was
//! written is then unknown: idempotence sorts that out on the retry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use strata_proto::v1;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::client::Client;
use crate::error::{Error, Result};

/// The answer to one request, as the sender waits for it: the broker's
/// answer (which may refuse the request as a whole), or the stream's end.
pub(crate) type Answer = oneshot::Receiver<Result<v1::ProduceStreamResponse>>;

#[derive(Debug, Default)]
struct Waiting {
    by_id: HashMap<u64, oneshot::Sender<Result<v1::ProduceStreamResponse>>>,
    /// Set once the stream is over; later requests fail with it at once.
    ended: Option<Error>,
}

/// One produce stream.
#[derive(Debug)]
pub(crate) struct Session {
    /// Unbounded: what is in flight is bounded by the producer's
    /// `buffer_bytes` and `max_in_flight`, never by this channel.
    tx: mpsc::UnboundedSender<v1::ProduceStreamRequest>,
    waiting: Arc<Mutex<Waiting>>,
    next_id: AtomicU64,
}

impl Session {
    /// Opens a stream. Requests may be sent at once; they are queued until
    /// the stream is up.
    pub(crate) fn open(client: &Client) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let session = Arc::new(Self {
            tx,
            waiting: waiting.clone(),
            next_id: AtomicU64::new(0),
        });
        let mut rpc = client.records();
        tokio::spawn(async move {
            let ended = match rpc.produce_stream(UnboundedReceiverStream::new(rx)).await {
                Err(status) => Error::from(status),
                Ok(answers) => {
                    let mut answers = answers.into_inner();
                    loop {
                        match answers.message().await {
                            Ok(Some(a)) => deliver(&waiting, a),
                            Ok(None) => {
                                break Error::local(
                                    tonic::Code::Unavailable,
                                    "the broker ended the produce stream",
                                );
                            }
                            Err(status) => break Error::from(status),
                        }
                    }
                }
            };
            end(&waiting, ended);
        });
        session
    }

    /// Whether the stream is over (a new session is needed).
    pub(crate) fn is_over(&self) -> bool {
        self.waiting.lock().expect("waiting lock").ended.is_some()
    }

    /// Sends a request; the answer comes on the returned channel.
    pub(crate) fn send(&self, request: v1::ProduceRequest) -> Answer {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut w = self.waiting.lock().expect("waiting lock");
            if let Some(e) = &w.ended {
                let _ = tx.send(Err(e.clone()));
                return rx;
            }
            w.by_id.insert(id, tx);
        }
        let msg = v1::ProduceStreamRequest {
            id,
            request: Some(request),
        };
        if self.tx.send(msg).is_err() {
            // The stream task is gone; `end` has failed (or will fail) the
            // waiting request.
            let taken = self.waiting.lock().expect("waiting lock").by_id.remove(&id);
            if let Some(tx) = taken {
                let _ = tx.send(Err(Error::local(
                    tonic::Code::Unavailable,
                    "the produce stream is closed",
                )));
            }
        }
        rx
    }
}

fn deliver(waiting: &Mutex<Waiting>, a: v1::ProduceStreamResponse) {
    let Some(tx) = waiting.lock().expect("waiting lock").by_id.remove(&a.id) else {
        // An answer to a request we gave up on (timed out).
        return;
    };
    let _ = tx.send(Ok(a));
}

fn end(waiting: &Mutex<Waiting>, e: Error) {
    let by_id = {
        let mut w = waiting.lock().expect("waiting lock");
        w.ended = Some(e.clone());
        std::mem::take(&mut w.by_id)
    };
    tracing::debug!(error = %e, waiting = by_id.len(), "produce stream ended");
    for (_, tx) in by_id {
        let _ = tx.send(Err(e.clone()));
    }
}
