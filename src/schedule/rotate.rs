//! Rotation: replaces ready event sessions older than their target's `rotate_every` (or
//! `full_rewarm_every`, when shorter), make-before-break: the old session is served until its
//! replacement is ready, then retired (`rotated`). A failed replacement leaves the old one
//! served; the next tick tries again. Login sessions are the keep-alive's.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;
use crate::session::now_ms;
use crate::warm::Warm;

/// The rotation worker: [`run_once`] every `tick`.
pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    super::every(
        "rotate",
        tick,
        tick.max(Duration::from_secs(5)),
        token,
        || {
            let pool = pool.clone();
            async move {
                let n = run_once(&pool, false);
                if n > 0 {
                    tracing::info!(sessions = n, "rotation started");
                }
            }
        },
    )
    .await
}

/// Starts the replacement of every ready event session due for rotation (every one with
/// `force`: `POST /api/sessions/rotate`). The replacement warms on the old session's event,
/// unless that event backs off now (then on any). Returns how many were started.
pub fn run_once<W: Warm>(pool: &Arc<Pool<W>>, force: bool) -> usize {
    let now = now_ms();
    let due = pool.mark_rotating(|s| {
        s.account.is_none()
            && pool.target(&s.target).is_ok_and(|t| {
                let every = t.config.rotate_every.min(t.config.full_rewarm_every);
                force || s.age_ms(now) >= every.as_millis() as u64
            })
    });
    for s in &due {
        let Ok(t) = pool.target(&s.target) else {
            continue;
        };
        // An event that fails lately is no place for the replacement: any is.
        let event = s.event.clone().filter(|ev| !t.event_backs_off(ev));
        pool.start_rotation(t, s.id.clone(), event);
    }
    due.len()
}
