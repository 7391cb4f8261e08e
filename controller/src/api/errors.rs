//! JSON errors with a message a person can act on and the right status.

use crate::engine::Refusal;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use subcast_proto::RefuseReason;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable short name: unknown-parent, not-a-member, pool-exhausted,
    /// table-full, quota-exceeded, agent-refused, agent-unreachable,
    /// bad-request, lifetime-too-long, unauthorized, forbidden, not-found,
    /// conflict, payload-too-large, internal...
    pub error: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// The switch that refused, did not answer or has no room, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.to_owned(),
                message: message.into(),
                switch: None,
            },
        }
    }
}

/// The status code of each refusal.
pub fn refusal_status(r: RefuseReason) -> StatusCode {
    match r {
        RefuseReason::UnknownParent => StatusCode::NOT_FOUND,
        RefuseReason::NotAMember | RefuseReason::LifetimeTooLong => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        RefuseReason::PoolExhausted | RefuseReason::TableFull => StatusCode::SERVICE_UNAVAILABLE,
        RefuseReason::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        RefuseReason::AgentRefused => StatusCode::BAD_GATEWAY,
        RefuseReason::AgentUnreachable => StatusCode::GATEWAY_TIMEOUT,
        RefuseReason::BadRequest => StatusCode::BAD_REQUEST,
        RefuseReason::Unauthorized => StatusCode::UNAUTHORIZED,
        RefuseReason::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError {
            status: refusal_status(r.reason),
            body: ErrorBody {
                error: r.reason.name().to_owned(),
                message: r.detail,
                switch: r.switch,
            },
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        let status = r.status();
        let (error, hint) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload-too-large",
                "send a smaller body (api.max_body_bytes)",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported-media-type",
                "send the header `Content-Type: application/json`",
            ),
            StatusCode::UNPROCESSABLE_ENTITY => (
                "bad-request",
                "the body is JSON but its fields are wrong; see /openapi.json",
            ),
            _ => ("bad-json", "the body is not valid JSON"),
        };
        // 422 for a well-formed body with wrong fields is axum's choice; we
        // keep 400 for every malformed request except size and media type.
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        ApiError::new(status, error, format!("{}: {hint}", r.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
