//! The expiry timer: sends the engine an `Expire` command, stamped with the time it is sent,
//! whenever the earliest expiry time of a resting `gtd` or `day` order has come. The engine
//! publishes that time after every command (`engine.next_expiry_ns`); the timer sleeps until
//! it, or at most [`TICK`] (so an order placed with a near expiry while the timer sleeps is
//! expired at most one tick late). While no timed order rests it waits for the ingress to say
//! that one was sent (`Ingress::expiry_wake`), or [`IDLE_CHECK`], instead of ticking. Like every command, `Expire` is journaled with its time, so
//! a replay expires the same orders; after a restart the first tick expires whatever came due
//! while the daemon was down.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::Ingress;
use super::link::{self, EngineRings};
use crate::engine::{Command, CommandBody, Outbound, Outcome};
use crate::telemetry::{mono_ns, wall_ns};

/// The longest the timer sleeps without looking at the next expiry time.
pub const TICK: Duration = Duration::from_millis(50);

/// The longest the timer waits for word of a timed order while none rests.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Runs until `stop` is raised (or the engine goes away).
pub async fn run(ingress: Arc<Ingress>, mut stop: watch::Receiver<bool>) {
    let Ok(EngineRings {
        mut commands,
        mut replies,
        bell,
        ..
    }) = link::register(&ingress)
    else {
        return;
    };
    let next_expiry = &ingress.counters.engine.next_expiry_ns;
    loop {
        if *stop.borrow() {
            return;
        }
        let next = next_expiry.load(Ordering::Acquire);
        let now = wall_ns();
        if next != 0 && next <= now {
            let sent = commands.push(Command {
                recv_ns: now,
                recv_mono: mono_ns(),
                body: CommandBody::Expire,
            });
            if sent.is_err() {
                return;
            }
            ingress.engine.ring();
            // The answer: `busy` (the journal's ring is full) waits a tick before trying again;
            // otherwise the loop looks at the next expiry time at once.
            let busy = loop {
                match replies.pop() {
                    Ok(Outbound::Reply(r)) => break r.outcome == Outcome::Busy,
                    Ok(Outbound::Report(_)) => continue,
                    Err(_) if replies.is_abandoned() => return,
                    Err(_) => {
                        let replies = &replies;
                        if !bell.prepare(|| !replies.is_empty() || replies.is_abandoned()) {
                            tokio::select! {
                                _ = bell.wait() => {}
                                _ = stop.changed() => return,
                            }
                        }
                    }
                }
            };
            if !busy {
                continue;
            }
        }
        let wait = if next > now {
            Duration::from_nanos(next - now).min(TICK)
        } else {
            TICK
        };
        if next == 0 {
            // Nothing timed rests: wait for word of a timed order, then look again after a
            // tick (the engine takes the order meanwhile).
            tokio::select! {
                _ = ingress.expiry_wake.notified() => {}
                _ = tokio::time::sleep(IDLE_CHECK) => {}
                _ = stop.changed() => return,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
