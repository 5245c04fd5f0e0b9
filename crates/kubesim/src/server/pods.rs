//! `pods/log`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::{AppState, param};
use crate::kubelet::runtime::{LogRequest, RuntimeError};
use crate::status::ApiError;

/// `sinceTime` / `sinceSeconds` as the instant from which records are kept. The apiserver
/// hands the kubelet `sinceTime` in whole seconds (`time.RFC3339`), so kubesim does too.
fn since(q: &[(String, String)]) -> Result<Option<Timestamp>, ApiError> {
    if let Some(s) = param(q, "sinceSeconds") {
        let secs = s
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| ApiError::bad_request(format!("invalid sinceSeconds {s:?}")))?;
        return Ok(crate::store::now_ts()
            .checked_sub(SignedDuration::from_secs(secs))
            .ok());
    }
    let Some(t) = param(q, "sinceTime") else {
        return Ok(None);
    };
    let ts: Timestamp = t
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid sinceTime {t:?}: {e}")))?;
    Ok(Timestamp::from_second(ts.as_second()).ok())
}

/// The record's timestamp (`<RFC 3339> <content>`, as the runtime stamps it).
fn stamp(record: &[u8]) -> Option<Timestamp> {
    let sp = record.iter().take(40).position(|b| *b == b' ')?;
    std::str::from_utf8(&record[..sp]).ok()?.parse().ok()
}

/// Keeps the records stamped at or after `since` (each runtime chunk is one record), without
/// their stamps unless the client asked for them — the kubelet's filter.
fn filter_since(
    stream: BoxStream<'static, Result<Bytes, RuntimeError>>,
    since: Timestamp,
    timestamps: bool,
) -> BoxStream<'static, Result<Bytes, RuntimeError>> {
    stream
        .filter_map(move |r| async move {
            match r {
                Ok(b) => match stamp(&b) {
                    Some(t) if t < since => None,
                    Some(_) if !timestamps => {
                        let sp = b.iter().position(|x| *x == b' ').unwrap_or(0);
                        Some(Ok(b.slice(sp + 1..)))
                    }
                    _ => Some(Ok(b)),
                },
                Err(e) => Some(Err(e)),
            }
        })
        .boxed()
}

/// The `logDrops` fault: the body ends with an error after `after` bytes (the connection is
/// cut without the chunked body's end).
fn cut_after(
    stream: BoxStream<'static, Result<Bytes, RuntimeError>>,
    after: u64,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    // state: bytes still allowed; None once the cut happened (the stream ends)
    stream
        .map(|r| r.map_err(std::io::Error::other))
        .scan(Some(after), |left, r| {
            let items: Option<Vec<Result<Bytes, std::io::Error>>> = match (left.as_mut(), r) {
                (None, _) => None,
                (Some(l), Ok(b)) if (b.len() as u64) < *l => {
                    *l -= b.len() as u64;
                    Some(vec![Ok(b)])
                }
                (Some(l), Ok(b)) => {
                    let head = b.slice(..*l as usize);
                    *left = None;
                    Some(vec![
                        Ok(head),
                        Err(std::io::Error::other("kubesim: injected log stream cut")),
                    ])
                }
                (Some(_), Err(e)) => Some(vec![Err(e)]),
            };
            futures::future::ready(items)
        })
        .flat_map(futures::stream::iter)
        .boxed()
}

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
    let since = since(q)?;
    let req = LogRequest {
        follow,
        tail,
        timestamps,
    };
    let mut stream = match since {
        // the filter needs the stamps: ask the runtime for them, strip them after
        Some(s) => {
            let stamped = LogRequest {
                timestamps: true,
                ..req
            };
            filter_since(state.kubelet.runtime().logs(&id, stamped), s, timestamps)
        }
        None => state.kubelet.runtime().logs(&id, req),
    };
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
    } else if let Some(after) = state.faults.log_drop(ns, name) {
        tracing::debug!(pod = name, after, "injected log stream cut");
        Body::from_stream(cut_after(stream, after))
    } else {
        Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other)))
    };
    Ok(([(http::header::CONTENT_TYPE, "text/plain")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(v: &[&'static str]) -> BoxStream<'static, Result<Bytes, RuntimeError>> {
        futures::stream::iter(
            v.iter()
                .map(|s| Ok(Bytes::from_static(s.as_bytes())))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    #[tokio::test]
    async fn since_filters_and_strips() {
        let s = chunks(&[
            "2026-01-01T00:00:00.5Z a\n",
            "2026-01-01T00:00:01.25Z b\n",
            "2026-01-01T00:00:02Z c\n",
        ]);
        let q = vec![("sinceTime".to_owned(), "2026-01-01T00:00:01.9Z".to_owned())];
        let t = since(&q).unwrap().unwrap();
        assert_eq!(t, "2026-01-01T00:00:01Z".parse::<Timestamp>().unwrap());
        let out: Vec<Bytes> = filter_since(s, t, false)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(out, [Bytes::from("b\n"), Bytes::from("c\n")]);
    }

    #[tokio::test]
    async fn a_cut_stream_ends_with_an_error_after_n_bytes() {
        let s = chunks(&["0123456789", "abcdef", "never"]);
        let out: Vec<Result<Bytes, std::io::Error>> = cut_after(s, 13).collect().await;
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().unwrap(), &Bytes::from("0123456789"));
        assert_eq!(out[1].as_ref().unwrap(), &Bytes::from("abc"));
        assert!(out[2].is_err());
    }
}
