//! A forward HTTP proxy for the tests: plain-HTTP targets on 127.0.0.1 only, Basic
//! credentials required, every request recorded.

use base64::Engine;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the proxy saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Requests it forwarded (credentials were right): "METHOD http://host/path".
    pub forwarded: Vec<String>,
    /// Requests it answered 407 (no or wrong credentials).
    pub challenged: usize,
}

/// A forward proxy for plain-HTTP targets on 127.0.0.1 only, one request per connection,
/// demanding `user:password` by Basic auth (407 otherwise).
pub struct Proxy {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(user: &str, password: &str) -> Self {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = CancellationToken::new();
        let (seen2, stop2) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = listener.accept() => c,
                    _ = stop2.cancelled() => return,
                };
                let Ok((conn, _)) = conn else { continue };
                tokio::spawn(serve(conn, expected.clone(), seen2.clone()));
            }
        });
        Self { port, seen, stop }
    }

    pub fn url(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(mut client: TcpStream, expected: String, seen: Arc<Mutex<Seen>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let split = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, rest) = head.split_at(split);
    let text = String::from_utf8_lossy(head).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut authorized = false;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "proxy-authorization" => authorized = value.trim() == expected,
            "proxy-connection" | "connection" | "keep-alive" => {}
            _ => headers.push(line.to_string()),
        }
    }
    if !authorized {
        seen.lock().unwrap().challenged += 1;
        let _ = client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"test\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    // Only absolute-form plain-HTTP requests to loopback.
    let Some(rest_of_url) = target.strip_prefix("http://127.0.0.1:") else {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let (port, path) = rest_of_url.split_at(rest_of_url.find('/').unwrap_or(rest_of_url.len()));
    let path = if path.is_empty() { "/" } else { path };
    seen.lock()
        .unwrap()
        .forwarded
        .push(format!("{method} {target}"));
    let Ok(mut upstream) = TcpStream::connect(format!("127.0.0.1:{port}")).await else {
        return;
    };
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    for h in headers {
        out.push_str(&h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(out.as_bytes()).await.is_err() || upstream.write_all(rest).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
