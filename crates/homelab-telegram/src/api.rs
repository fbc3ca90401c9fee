//! A small Bot API client: the five methods this crate needs, their wire types, a timeout on
//! every call, and errors that never carry the request URL (it contains the bot token).
//!
//! Why not a client crate: `frankenstein` (the maintained, light choice) pulls reqwest 0.13 with
//! `aws-lc-rs` (a second reqwest and a C/cmake build) and `teloxide` is far heavier; the
//! workspace already has reqwest 0.12 with rustls, and five JSON methods are easy to own.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A failed Bot API call. Display never includes the URL or the token.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Connection refused, DNS, TLS, timeout: worth retrying later.
    #[error("Telegram Bot API unreachable ({method}): {source}")]
    Network {
        method: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The API answered `ok: false`.
    #[error("Telegram Bot API refused {method}: {code} {description}")]
    Refused { method: &'static str, code: i64, description: String, retry_after: Option<u64> },
    /// The answer was not the Bot API's JSON.
    #[error("Telegram Bot API answered {method} with something unexpected (HTTP {status}): {detail}")]
    Unexpected { method: &'static str, status: u16, detail: String },
}

impl ApiError {
    /// Errors that retrying the same call cannot fix (bad request, forbidden, not found):
    /// a message that cannot be edited any more, a chat the bot was removed from.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ApiError::Refused { code, .. } if (400..500).contains(code) && *code != 429)
    }

    /// "message is not modified": the edit is already what we wanted.
    pub fn is_not_modified(&self) -> bool {
        matches!(self, ApiError::Refused { description, .. } if description.contains("message is not modified"))
    }

    /// How long the API asked us to wait (429), if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Refused { retry_after: Some(s), .. } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// An incoming update; only callback queries matter here, everything else is skipped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_query: Option<CallbackQuery>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// The message the button was on (may be "inaccessible", which still has chat and id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl User {
    /// How the outcome names a person: `@username`, else the first name, else the id.
    pub fn display(&self) -> String {
        match (&self.username, self.first_name.is_empty()) {
            (Some(u), _) if !u.is_empty() => format!("@{u}"),
            (_, false) => self.first_name.clone(),
            _ => self.id.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chat {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineKeyboardMarkup {
    pub inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineKeyboardButton {
    pub text: String,
    pub callback_data: String,
}

#[derive(Debug, Serialize)]
struct SendMessage<'a> {
    chat_id: i64,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_markup: Option<&'a InlineKeyboardMarkup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_parameters: Option<ReplyParameters>,
    link_preview_options: LinkPreviewOptions,
}

#[derive(Debug, Serialize)]
struct ReplyParameters {
    message_id: i64,
    allow_sending_without_reply: bool,
}

#[derive(Debug, Serialize)]
struct LinkPreviewOptions {
    is_disabled: bool,
}

#[derive(Debug, Serialize)]
struct EditMessageText<'a> {
    chat_id: i64,
    message_id: i64,
    text: &'a str,
    /// Always sent: an empty keyboard removes the buttons.
    reply_markup: &'a InlineKeyboardMarkup,
    link_preview_options: LinkPreviewOptions,
}

#[derive(Debug, Serialize)]
struct AnswerCallbackQuery<'a> {
    callback_query_id: &'a str,
    text: &'a str,
}

#[derive(Debug, Serialize)]
struct GetUpdates {
    offset: i64,
    timeout: u64,
    allowed_updates: [&'static str; 1],
}

/// The Bot API client. Cheap to clone.
#[derive(Clone)]
pub struct Bot {
    http: reqwest::Client,
    /// `<base>/bot<token>`: never logged, never put in an error.
    endpoint: String,
    call_timeout: Duration,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot").field("endpoint", &"<redacted>").finish()
    }
}

impl Bot {
    pub fn new(api_base: &str, token: &str, call_timeout: Duration) -> Result<Bot, reqwest::Error> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        Ok(Bot { http, endpoint: format!("{}/bot{token}", api_base.trim_end_matches('/')), call_timeout })
    }

    async fn call<P: Serialize, T: DeserializeOwned>(&self, method: &'static str, params: &P, timeout: Duration) -> Result<T, ApiError> {
        let net = |e: reqwest::Error| ApiError::Network { method, source: e.without_url() };
        let resp = self.http.post(format!("{}/{method}", self.endpoint)).timeout(timeout).json(params).send().await.map_err(net)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(net)?;
        let env: Envelope<T> = serde_json::from_slice(&body).map_err(|e| ApiError::Unexpected { method, status, detail: e.to_string() })?;
        match (env.ok, env.result) {
            (true, Some(r)) => Ok(r),
            (true, None) => Err(ApiError::Unexpected { method, status, detail: "ok without a result".into() }),
            (false, _) => Err(ApiError::Refused {
                method,
                code: env.error_code.unwrap_or(status as i64),
                description: env.description.unwrap_or_default(),
                retry_after: env.parameters.and_then(|p| p.retry_after),
            }),
        }
    }

    /// Sends a plain-text message; returns its message id.
    pub async fn send_message(&self, chat_id: i64, text: &str, keyboard: Option<&InlineKeyboardMarkup>, reply_to: Option<i64>) -> Result<i64, ApiError> {
        let params = SendMessage {
            chat_id,
            text,
            reply_markup: keyboard.filter(|k| !k.inline_keyboard.is_empty()),
            reply_parameters: reply_to.map(|message_id| ReplyParameters { message_id, allow_sending_without_reply: true }),
            link_preview_options: LinkPreviewOptions { is_disabled: true },
        };
        let m: Message = self.call("sendMessage", &params, self.call_timeout).await?;
        Ok(m.message_id)
    }

    /// Replaces a message's text and buttons. "Not modified" counts as success.
    pub async fn edit_message_text(&self, chat_id: i64, message_id: i64, text: &str, keyboard: &InlineKeyboardMarkup) -> Result<(), ApiError> {
        let params = EditMessageText { chat_id, message_id, text, reply_markup: keyboard, link_preview_options: LinkPreviewOptions { is_disabled: true } };
        match self.call::<_, serde_json::Value>("editMessageText", &params, self.call_timeout).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_modified() => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn answer_callback_query(&self, id: &str, text: &str) -> Result<(), ApiError> {
        self.call::<_, bool>("answerCallbackQuery", &AnswerCallbackQuery { callback_query_id: id, text }, self.call_timeout).await.map(|_| ())
    }

    /// Long polling: waits up to `wait` on the server for callback queries from `offset` on.
    pub async fn get_updates(&self, offset: i64, wait: Duration) -> Result<Vec<Update>, ApiError> {
        let params = GetUpdates { offset, timeout: wait.as_secs(), allowed_updates: ["callback_query"] };
        self.call("getUpdates", &params, wait + self.call_timeout).await
    }

    /// Registers the webhook URL with its secret token (webhook mode).
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), ApiError> {
        let params = serde_json::json!({ "url": url, "secret_token": secret, "allowed_updates": ["callback_query"] });
        self.call::<_, bool>("setWebhook", &params, self.call_timeout).await.map(|_| ())
    }
}
