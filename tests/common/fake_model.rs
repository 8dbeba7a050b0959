//! A local HTTP server that stands in for a language model API (OpenAI Chat Completions or
//! Anthropic Messages, by the replies it is given): it records every request it receives and
//! answers from a script, so a test can assert exactly what was sent.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: serde_json::Value,
    pub raw: String,
}

/// One scripted reply.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke client timeouts).
    pub delay: Duration,
    /// Bytes sent instead of `body` (which must be UTF-8).
    pub raw_body: Option<Vec<u8>>,
    /// Send the body one byte per this interval (a server that trickles).
    pub trickle: Option<Duration>,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body: body.to_string(),
            ..Reply::default()
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn with_raw_body(mut self, body: Vec<u8>) -> Reply {
        self.raw_body = Some(body);
        self
    }

    pub fn trickled(mut self, interval: Duration) -> Reply {
        self.trickle = Some(interval);
        self
    }
}

/// A Chat Completions answer whose message content is `content`.
pub fn openai_reply(content: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_767_225_600,
            "model": "test-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": null},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 150, "total_tokens": 1350}
        }),
    )
}

/// A Chat Completions answer that calls tools: `(id, name, arguments)` each.
pub fn openai_tool_calls(calls: &[(&str, &str, serde_json::Value)]) -> Reply {
    let calls: Vec<serde_json::Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}})
        })
        .collect();
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-tools",
            "object": "chat.completion",
            "created": 1_767_225_600,
            "model": "test-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "tool_calls": calls, "refusal": null},
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940}
        }),
    )
}

/// A Messages answer that calls tools other than `propose_fix`: `(id, name, input)` each.
pub fn anthropic_tool_uses(uses: &[(&str, &str, serde_json::Value)]) -> Reply {
    let blocks: Vec<serde_json::Value> = uses
        .iter()
        .map(
            |(id, name, input)| json!({"type": "tool_use", "id": id, "name": name, "input": input}),
        )
        .collect();
    Reply::json(
        200,
        json!({
            "id": "msg_tools",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": blocks,
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 900, "output_tokens": 40}
        }),
    )
}

/// A Messages answer that calls the `propose_fix` tool with `input`.
pub fn anthropic_reply(input: serde_json::Value) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "tool_use", "id": "toolu_test", "name": "propose_fix", "input": input}],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 1100, "output_tokens": 140}
        }),
    )
}

/// An error in OpenAI's shape.
pub fn error_reply(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": message, "type": "server_error"}}),
    )
}

/// Answers a request by what it asks for (method, path and query, body); `None`: use the script.
pub type Responder = Box<dyn FnMut(&Recorded) -> Option<Reply> + Send>;

#[derive(Default)]
struct Shared {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    fallback: Option<Reply>,
    responder: Option<Responder>,
}

pub struct FakeServer {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl FakeServer {
    /// Starts a server answering every request with `fallback` unless a scripted reply is queued.
    /// It runs on a thread and runtime of its own, so tests may be sync or async.
    pub fn start(fallback: Reply) -> FakeServer {
        let shared = Arc::new(Mutex::new(Shared {
            fallback: Some(fallback),
            ..Shared::default()
        }));
        let (port_sender, port_receiver) = std::sync::mpsc::channel();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let _ = port_sender.send(listener.local_addr().expect("address").port());
                let _ = axum::serve(listener, app).await;
            });
        });
        let port = port_receiver.recv().expect("the fake server started");
        FakeServer { port, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Queues replies used before the fallback, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().unwrap().script.extend(replies);
    }

    /// Answers by request (a fake REST API); the script and fallback answer what it does not.
    pub fn set_responder(
        &self,
        responder: impl FnMut(&Recorded) -> Option<Reply> + Send + 'static,
    ) {
        self.shared.lock().unwrap().responder = Some(Box::new(responder));
    }

    pub fn set_fallback(&self, reply: Reply) {
        self.shared.lock().unwrap().fallback = Some(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().unwrap().requests.len()
    }
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let reply = {
        let mut shared = shared.lock().unwrap();
        // The path with its query: REST fakes answer by both.
        let recorded = Recorded {
            method: method.to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| uri.path().to_string()),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        value.to_str().unwrap_or("").to_string(),
                    )
                })
                .collect(),
            body: serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null),
            raw,
        };
        let answered = shared
            .responder
            .as_mut()
            .and_then(|responder| responder(&recorded));
        shared.requests.push(recorded);
        answered
            .or_else(|| shared.script.pop_front())
            .or_else(|| shared.fallback.clone())
    };
    let Some(reply) = reply else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = reply.raw_body.unwrap_or_else(|| reply.body.into_bytes());
    let mut response = match reply.trickle {
        None => (status, bytes).into_response(),
        Some(interval) => {
            let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
            tokio::spawn(async move {
                for byte in bytes {
                    tokio::time::sleep(interval).await;
                    if sender.send(Ok(Bytes::from(vec![byte]))).await.is_err() {
                        return;
                    }
                }
            });
            (
                status,
                axum::body::Body::from_stream(ReceiverStream(receiver)),
            )
                .into_response()
        }
    };
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A channel's receiving end as a stream of body chunks.
struct ReceiverStream(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for ReceiverStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
