//! The one timer a connection driver keeps for its sans-IO state machine: armed at the machine's
//! next deadline (`poll_timeout`), re-armed only when that deadline changes, cancelled when there
//! is none. Deadlines are on tokio's clock, so tests can pause and advance it.

use std::time::Instant;

use actix::{Actor, AsyncContext, Context, SpawnHandle};

/// Now, on tokio's clock.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The armed deadline and its handle.
#[derive(Debug, Default)]
pub struct DeadlineTimer {
    armed: Option<(Instant, SpawnHandle)>,
}

impl DeadlineTimer {
    /// Arms the timer at `deadline` (or cancels it for `None`). When it fires, `timer` finds
    /// this timer in the actor (to mark it spent) and `fire` runs.
    pub fn arm<A>(
        &mut self,
        ctx: &mut Context<A>,
        deadline: Option<Instant>,
        timer: fn(&mut A) -> &mut DeadlineTimer,
        fire: fn(&mut A, &mut Context<A>),
    ) where
        A: Actor<Context = Context<A>>,
    {
        match deadline {
            Some(d) if self.armed.as_ref().is_some_and(|(at, _)| *at == d) => {}
            Some(d) => {
                self.cancel(ctx);
                let delay = d.saturating_duration_since(now());
                let h = ctx.run_later(delay, move |act, ctx| {
                    timer(act).armed = None;
                    fire(act, ctx);
                });
                self.armed = Some((d, h));
            }
            None => self.cancel(ctx),
        }
    }

    /// Cancels the armed deadline, if any.
    pub fn cancel<A>(&mut self, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>>,
    {
        if let Some((_, h)) = self.armed.take() {
            ctx.cancel_future(h);
        }
    }
}
