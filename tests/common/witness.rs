//! A second local site that proves a request was refused: it counts every connection made to
//! it (so a test never sends one anywhere but 127.0.0.1 to show a refusal).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A second local site that counts every connection made to it. `answer`: reply 200 to each,
/// else close at once (an open port that is no proxy).
pub struct Witness {
    pub port: u16,
    hits: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Witness {
    pub async fn start(answer: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (h, s) = (hits.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = listener.accept() => c,
                    _ = s.cancelled() => return,
                };
                let Ok((mut conn, _)) = conn else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                if answer {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        let _ = conn.read(&mut buf).await;
                        let _ = conn
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 7\r\nConnection: close\r\n\r\nwitness",
                            )
                            .await;
                    });
                }
            }
        });
        Self { port, hits, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
