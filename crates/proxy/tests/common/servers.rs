//! Targets that speak more than plain HTTP/1: a WebSocket echo server and an h2c server that
//! answers like gRPC.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// A WebSocket server that echoes every message.
pub async fn ws_echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// An HTTP/2-only (h2c) backend that answers like a gRPC server: the request body echoed, then
/// `grpc-status` trailers. Reports what it saw in response headers.
pub async fn grpc_backend() -> SocketAddr {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let te = req
                        .headers()
                        .get("te")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    let version = format!("{:?}", req.version());
                    let collected = req.into_body().collect().await.unwrap();
                    let req_trailer = collected
                        .trailers()
                        .and_then(|t| t.get("x-client-trailer"))
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    let body = collected.to_bytes();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    trailers.insert("grpc-message", "ok".parse().unwrap());
                    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
                        vec![Ok(Frame::data(body)), Ok(Frame::trailers(trailers))];
                    let resp = hyper::Response::builder()
                        .header("content-type", "application/grpc")
                        .header("x-seen-te", te)
                        .header("x-seen-version", version)
                        .header("x-seen-request-trailer", req_trailer)
                        .body(StreamBody::new(futures_util::stream::iter(frames)))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}
