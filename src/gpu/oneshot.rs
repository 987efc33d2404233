//! A one-value channel whose receiver is a future: how a wgpu callback (`map_async`) wakes
//! an `async fn`, natively and in a browser, without an executor-specific crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// Resolves to the value the sender was called with.
pub struct Receiver<T>(Arc<Mutex<Slot<T>>>);

/// A sender (call it once with the value) and the future that receives it.
pub fn channel<T: Send + 'static>() -> (impl FnOnce(T) + Send + 'static, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let tx = slot.clone();
    let send = move |v: T| {
        if let Ok(mut s) = tx.lock() {
            s.value = Some(v);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    };
    (send, Receiver(slot))
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl<T> Receiver<T> {
    /// Whether the value has arrived (and not been taken yet).
    pub fn is_ready(&self) -> bool {
        match self.0.lock() {
            Ok(s) => s.value.is_some(),
            Err(p) => p.into_inner().value.is_some(),
        }
    }

    /// The value if it has arrived, without waiting (it is taken: the future will not see it).
    pub fn try_take(&self) -> Option<T> {
        match self.0.lock() {
            Ok(mut s) => s.value.take(),
            Err(p) => p.into_inner().value.take(),
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // A poisoned lock can only come from a panic in `send`, which holds no user code.
        let mut s = match self.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
