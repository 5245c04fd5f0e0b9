//! `pods/log`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::{AppState, param};
use crate::status::ApiError;

pub(super) async fn logs(
    state: &AppState,
    ns: &str,
    name: &str,
    q: &[(String, String)],
) -> Result<Response, ApiError> {
    if param(q, "previous") == Some("true") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container in pod {name:?} not found (kubesim keeps no previous containers)"
        )));
    }
    let id = state
        .kubelet
        .container_target(ns, name, param(q, "container"), false)?;
    let follow = param(q, "follow") == Some("true");
    let timestamps = param(q, "timestamps") == Some("true");
    let tail = param(q, "tailLines").and_then(|t| t.parse::<u64>().ok());
    let limit = param(q, "limitBytes").and_then(|t| t.parse::<usize>().ok());
    let mut stream = state.kubelet.runtime().logs(&id, follow, tail, timestamps);
    let body = if let Some(limit) = limit {
        let mut out = Vec::new();
        while let Some(Ok(b)) = stream.next().await {
            out.extend_from_slice(&b);
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        Body::from(out)
    } else {
        Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other)))
    };
    Ok(([(http::header::CONTENT_TYPE, "text/plain")], body).into_response())
}
