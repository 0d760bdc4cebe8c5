//! Response bodies read from an [`H1Conn`]: frames decoded from the read buffer by
//! [`Framing::decode`], the buffer refilled from the connection when it runs dry; the
//! connection goes back to its pool when the body ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Response, Version};
use hyper::body::{Body, Frame, SizeHint};

use super::decode::{Decoded, Framing};
use super::{H1Conn, H1Error, Home};
use crate::proxy::body::BoxError;
use crate::proxy::wire;

/// Whether the connection may carry another request after this response.
pub(super) fn keeps_alive<T>(head: &Response<T>) -> bool {
    head.version() == Version::HTTP_11 && !wire::connection_has(head.headers(), "close")
}

/// A response body read from its connection; the connection goes home at the end.
pub struct H1Body {
    conn: Option<H1Conn>,
    framing: Framing,
    keep_alive: bool,
    home: Option<Arc<dyn Home>>,
    /// Whether the body had to wait for the backend (a long poll, a slow backend).
    waited: bool,
}

impl H1Body {
    /// The body of a response just read from `conn`.
    pub(super) fn new(
        conn: H1Conn,
        framing: Framing,
        keep_alive: bool,
        home: Arc<dyn Home>,
    ) -> Self {
        let mut body = H1Body {
            conn: Some(conn),
            framing,
            keep_alive,
            home: Some(home),
            waited: false,
        };
        body.settle();
        body
    }

    /// Sends the connection home once the body is over and the connection reusable.
    fn settle(&mut self) {
        if self.framing == Framing::Length(0) {
            self.framing = Framing::Done;
        }
        if self.framing != Framing::Done {
            return;
        }
        let (Some(mut conn), Some(home)) = (self.conn.take(), self.home.take()) else {
            return;
        };
        if self.waited {
            // Its idle age starts now rather than at the request, or a long poll
            // would retire a connection that has just been busy.
            conn.used = tokio::time::Instant::now();
        }
        if self.keep_alive && conn.buf.is_empty() {
            home.put(conn);
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, H1Error>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.framing.decode(&mut conn.buf)? {
                Decoded::Data(data) => return Poll::Ready(Some(Ok(data))),
                // Trailers are read and dropped.
                Decoded::Trailer(..) => {}
                Decoded::End => return Poll::Ready(None),
                Decoded::More => {
                    if ready!(conn.poll_fill(cx))? == 0 {
                        self.framing.at_eof()?;
                    }
                }
            }
        }
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = this.poll_data(cx);
        match polled {
            Poll::Ready(Some(Ok(data))) => {
                this.settle();
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                this.framing = Framing::Done;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.settle();
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.waited = true;
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
