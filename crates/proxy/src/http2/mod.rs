//! The HTTP/2 server of application load balancer listeners (RFC 9113), for clients that
//! negotiate `h2` over TLS or open a plain connection with the h2c preface.
//!
//! One task per connection reads and writes the frames itself and polls every stream's
//! exchange with its target as one of its futures, so a request costs no task, channel or
//! wake-up beyond the exchange's own I/O. Header blocks are (de)compressed by [`hpack`].

mod conn;
mod exchange;
mod frame;
pub(crate) mod hpack;
mod recv;
mod request;
pub(crate) mod upstream;

pub(crate) use conn::serve;
pub(crate) use frame::PREFACE;
pub(crate) use recv::RecvBody;

/// Fuzzing: one HTTP/2 connection served over an in-memory pipe whose client sends the
/// preface, then `data`, then closes; every request is answered by a fixed response (no
/// target). Runs on a current-thread runtime with paused time, so timeouts cost nothing.
#[cfg(fuzzing)]
pub(crate) fn fuzz_frames(data: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime for fuzzing");
    }
    let router = crate::Router::new(crate::RouteAction::FixedResponse {
        status: 200,
        content_type: "text/plain".into(),
        body: "ok".into(),
    });
    let ctx = crate::ctx::ConnCtx::for_tests(router);
    RT.with(|rt| {
        rt.block_on(async {
            crate::net::pass::spawn_releaser();
            let (client, server) = tokio::io::duplex(1 << 20);
            let (mut rd, mut wr) = tokio::io::split(client);
            let feed = async move {
                let _ = wr.write_all(PREFACE).await;
                let _ = wr.write_all(data).await;
                let _ = wr.shutdown().await;
            };
            let drain = async move {
                let mut sink = vec![0u8; 64 * 1024];
                while rd.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            };
            tokio::join!(conn::serve(server, Vec::new(), ctx), feed, drain);
        });
    });
}
