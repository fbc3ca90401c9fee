//! A Bot API stand-in on loopback speaking the real wire format: `POST /bot<token>/<method>`
//! with JSON, answers `{"ok":true,"result":…}`. It records what the bot sent and serves queued
//! callback queries to `getUpdates` (long polling included).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const TOKEN: &str = "4242:fake-bot-token-SECRET";
/// A chat the fake API refuses, as Telegram does for a chat the bot is not in.
pub const MISSING_CHAT: i64 = 4040;

#[derive(Debug, Clone)]
pub struct Sent {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    /// Callback data of the buttons, in order.
    pub buttons: Vec<String>,
    pub reply_to: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Edit {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    pub buttons: Vec<String>,
}

#[derive(Default)]
pub struct Recorded {
    pub sent: Vec<Sent>,
    pub edits: Vec<Edit>,
    /// (callback query id, text)
    pub answers: Vec<(String, String)>,
    /// sendMessage calls refused because of [`MISSING_CHAT`].
    pub refused: usize,
    queue: Vec<Value>,
    next_update: i64,
    next_message: i64,
    next_query: i64,
}

struct Inner {
    rec: Mutex<Recorded>,
    queued: Notify,
}

pub struct FakeBot {
    pub base: String,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBot {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn buttons(v: &Value) -> Vec<String> {
    v["reply_markup"]["inline_keyboard"]
        .as_array()
        .map(|rows| rows.iter().flat_map(|r| r.as_array().cloned().unwrap_or_default()).filter_map(|b| b["callback_data"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

async fn method(State(inner): State<Arc<Inner>>, Path((bot, method)): Path<(String, String)>, Json(p): Json<Value>) -> Json<Value> {
    if bot != format!("bot{TOKEN}") {
        return Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    }
    let chat = |p: &Value| json!({"id": p["chat_id"], "type": "private"});
    match method.as_str() {
        "sendMessage" if p["chat_id"].as_i64() == Some(MISSING_CHAT) => {
            inner.rec.lock().unwrap().refused += 1;
            Json(json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}))
        }
        "sendMessage" => {
            let mut r = inner.rec.lock().unwrap();
            r.next_message += 1;
            let message_id = r.next_message;
            let sent = Sent {
                chat_id: p["chat_id"].as_i64().unwrap(),
                message_id,
                text: p["text"].as_str().unwrap().to_owned(),
                buttons: buttons(&p),
                reply_to: p["reply_parameters"]["message_id"].as_i64(),
            };
            r.sent.push(sent);
            Json(json!({"ok": true, "result": {"message_id": message_id, "date": 0, "chat": chat(&p), "text": p["text"]}}))
        }
        "editMessageText" => {
            let mut r = inner.rec.lock().unwrap();
            let edit = Edit {
                chat_id: p["chat_id"].as_i64().unwrap(),
                message_id: p["message_id"].as_i64().unwrap(),
                text: p["text"].as_str().unwrap().to_owned(),
                buttons: buttons(&p),
            };
            r.edits.push(edit);
            Json(json!({"ok": true, "result": {"message_id": p["message_id"], "date": 0, "chat": chat(&p), "text": p["text"]}}))
        }
        "answerCallbackQuery" => {
            let mut r = inner.rec.lock().unwrap();
            r.answers.push((p["callback_query_id"].as_str().unwrap().to_owned(), p["text"].as_str().unwrap_or("").to_owned()));
            Json(json!({"ok": true, "result": true}))
        }
        "getUpdates" => {
            let offset = p["offset"].as_i64().unwrap_or(0);
            let wait = Duration::from_secs(p["timeout"].as_u64().unwrap_or(0));
            let take = |inner: &Inner| {
                let mut r = inner.rec.lock().unwrap();
                // As the real API: asking from an offset confirms everything before it.
                r.queue.retain(|u| u["update_id"].as_i64().unwrap() >= offset);
                r.queue.clone()
            };
            let mut ups = take(&inner);
            if ups.is_empty() {
                let _ = tokio::time::timeout(wait, inner.queued.notified()).await;
                ups = take(&inner);
            }
            Json(json!({"ok": true, "result": ups}))
        }
        _ => Json(json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"})),
    }
}

impl FakeBot {
    pub async fn start() -> FakeBot {
        Self::start_at("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_at(addr: std::net::SocketAddr) -> FakeBot {
        let inner = Arc::new(Inner { rec: Mutex::new(Recorded { next_update: 1000, ..Default::default() }), queued: Notify::new() });
        let app = axum::Router::new().route("/{bot}/{method}", post(method)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeBot { base, inner, server }
    }

    pub fn with<T>(&self, f: impl FnOnce(&Recorded) -> T) -> T {
        f(&self.inner.rec.lock().unwrap())
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.with(|r| r.sent.clone())
    }

    /// The callback query update a button press produces; returns the query id.
    pub fn press(&self, chat_id: i64, user_id: i64, message_id: i64, data: &str) -> String {
        let id = {
            let mut r = self.inner.rec.lock().unwrap();
            r.next_update += 1;
            r.next_query += 1;
            let (update_id, query_id) = (r.next_update, format!("cq-{}", r.next_query));
            r.queue.push(Self::update_json(update_id, &query_id, chat_id, user_id, message_id, data));
            query_id
        };
        self.inner.queued.notify_one();
        id
    }

    pub fn update_json(update_id: i64, query_id: &str, chat_id: i64, user_id: i64, message_id: i64, data: &str) -> Value {
        json!({
            "update_id": update_id,
            "callback_query": {
                "id": query_id,
                "from": {"id": user_id, "is_bot": false, "first_name": "Alice", "username": "alice"},
                "message": {"message_id": message_id, "date": 0, "chat": {"id": chat_id, "type": "private"}, "text": "…"},
                "chat_instance": "1",
                "data": data
            }
        })
    }

    pub fn answer(&self, query_id: &str) -> Option<String> {
        self.with(|r| r.answers.iter().find(|(q, _)| q == query_id).map(|(_, t)| t.clone()))
    }

    /// The latest text of a message: its last edit, else what was sent.
    pub fn latest(&self, chat_id: i64, message_id: i64) -> Option<(String, Vec<String>)> {
        self.with(|r| {
            r.edits
                .iter()
                .rev()
                .find(|e| e.chat_id == chat_id && e.message_id == message_id)
                .map(|e| (e.text.clone(), e.buttons.clone()))
                .or_else(|| r.sent.iter().find(|s| s.chat_id == chat_id && s.message_id == message_id).map(|s| (s.text.clone(), s.buttons.clone())))
        })
    }
}
