//! A TCP listener whose connections a request handler can reset: the `reset` fault must close
//! the socket without writing any HTTP response, which axum's handlers cannot do on their own.
//!
//! Each accepted stream carries a shared flag; the handler reaches it through
//! `ConnectInfo<ConnHandle>`. Once the flag is set, the next read or write on the stream fails,
//! hyper drops the connection, and the zero linger set just before makes the close a TCP RST.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

/// Loopback listener handing out [`ResettableStream`]s.
pub(crate) struct DemoListener {
    /// The bound socket; accept errors are retried by axum's `Listener` impl for it.
    inner: TcpListener,
}

impl DemoListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for DemoListener {
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (inner, addr) = Listener::accept(&mut self.inner).await;
        let stream = ResettableStream {
            inner,
            reset: Arc::new(AtomicBool::new(false)),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The handler's grip on its connection, extracted as `ConnectInfo<ConnHandle>`.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    /// Shared with the connection's [`ResettableStream`].
    reset: Arc<AtomicBool>,
}

impl ConnHandle {
    /// Makes the connection fail before any response byte is written; the client sees a reset.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, DemoListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, DemoListener>) -> Self {
        Self {
            reset: Arc::clone(&stream.io().reset),
        }
    }
}

/// A TCP stream that starts failing every operation once its connection was reset.
pub(crate) struct ResettableStream {
    /// The accepted socket.
    inner: TcpStream,
    /// Set by [`ConnHandle::reset`].
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    /// `Err` once reset was requested; also arms the RST for when hyper drops the socket.
    fn check(&self) -> io::Result<()> {
        if !self.reset.load(Ordering::SeqCst) {
            return Ok(());
        }
        // A zero linger makes close() send RST and return at once; the deprecation warns about
        // a non-zero linger blocking the thread on drop, which cannot happen with zero.
        #[allow(deprecated)]
        let _ = self.inner.set_linger(Some(Duration::ZERO));
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "demo fault: connection reset",
        ))
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
