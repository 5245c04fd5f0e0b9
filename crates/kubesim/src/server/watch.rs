//! `?watch=true` with the apiserver's resourceVersion semantics:
//! unset / "0": synthetic ADDED events for the current state, then changes;
//! "N": every change after N (410 Expired as an ERROR event if N was compacted);
//! selectors apply to old and new state (an object leaving the selector is DELETED).

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::crud::selectors;
use super::{AppState, param};
use crate::status::ApiError;
use crate::store::{EventType, Kind};

fn line(etype: &str, obj: &Value) -> Bytes {
    let mut s = json!({"type": etype, "object": obj}).to_string();
    s.push('\n');
    Bytes::from(s)
}

pub(super) fn watch(
    state: &AppState,
    kind: Kind,
    ns: Option<String>,
    q: &[(String, String)],
) -> Result<Response, ApiError> {
    let (ls, fs) = selectors(kind, q)?;
    let rv_param = param(q, "resourceVersion").unwrap_or("").to_string();
    let timeout = param(q, "timeoutSeconds").and_then(|t| t.parse::<u64>().ok());
    let bookmarks = param(q, "allowWatchBookmarks") == Some("true");
    let send_initial = param(q, "sendInitialEvents") == Some("true");
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let store = state.store.clone();
    let matches = move |o: &Value| {
        ns.as_deref()
            .is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n))
            && ls.matches(o)
            && fs.matches(o)
    };
    let start_rv: Option<u64> =
        if rv_param.is_empty() || rv_param == "0" {
            None
        } else {
            Some(rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {rv_param}"))
            })?)
        };
    // initial state + subscription are taken atomically with respect to the store
    let (initial, from_rv, sub) = match start_rv {
        Some(rv) if !send_initial => match store.subscribe_from(rv) {
            Ok((past, rx)) => (Vec::new(), rv, Ok((past, rx))),
            Err(oldest) => (Vec::new(), rv, Err(oldest)),
        },
        _ => {
            // list + subscribe without a gap: subscribe from the list's rv
            let (items, rv) = store.list(kind, None);
            match store.subscribe_from(rv) {
                Ok((past, rx)) => (items, rv, Ok((past, rx))),
                Err(oldest) => (Vec::new(), rv, Err(oldest)),
            }
        }
    };
    tokio::spawn(async move {
        let (past, mut live) = match sub {
            Ok(x) => x,
            Err(oldest) => {
                let e = ApiError::expired(from_rv, oldest);
                let _ = tx.send(Ok(line("ERROR", &e.status))).await;
                return;
            }
        };
        for o in initial.iter().filter(|o| matches(o)) {
            if tx.send(Ok(line("ADDED", o))).await.is_err() {
                return;
            }
        }
        if send_initial {
            let bm = json!({"kind": kind.name(), "apiVersion": "v1", "metadata": {"resourceVersion": from_rv.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(Ok(line("BOOKMARK", &bm))).await.is_err() {
                return;
            }
        }
        let mut last = from_rv;
        let deadline = timeout.map(|t| tokio::time::Instant::now() + Duration::from_secs(t));
        let mut bookmark_tick = tokio::time::interval(Duration::from_secs(5));
        bookmark_tick.reset();
        let mut pending = past.into_iter();
        loop {
            let ev = if let Some(ev) = pending.next() {
                ev
            } else {
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = live.recv() => match r {
                        Ok(ev) => ev,
                        // too slow: end the watch; the client re-watches from its last rv
                        Err(_) => return,
                    },
                    _ = sleep => return,
                    _ = bookmark_tick.tick(), if bookmarks => {
                        let bm = json!({"kind": kind.name(), "apiVersion": "v1", "metadata": {"resourceVersion": last.to_string()}});
                        if tx.send(Ok(line("BOOKMARK", &bm))).await.is_err() { return; }
                        continue;
                    }
                    _ = tx.closed() => return,
                }
            };
            if ev.rv <= last || ev.kind != kind {
                continue;
            }
            last = ev.rv;
            let now = matches(&ev.object);
            let before = ev.prev.as_deref().is_some_and(&matches);
            let etype = match (ev.etype, before, now) {
                (EventType::Added, _, true) => "ADDED",
                (EventType::Deleted, _, true) => "DELETED",
                (EventType::Modified, true, true) => "MODIFIED",
                (EventType::Modified, false, true) => "ADDED",
                (EventType::Modified, true, false) => "DELETED",
                _ => continue,
            };
            if tx.send(Ok(line(etype, &ev.object))).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [
            (http::header::CONTENT_TYPE, "application/json"),
            (http::header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response())
}
