//! Halts and resumes of all trading, one market or one user.

use super::command::{HaltTarget, Outcome, RejectCode};
use super::event::EventKind;
use super::machine::Engine;
use super::machine::username;
use super::output::{Emit, Output};

impl Engine {
    pub(super) fn halt<O: Output>(
        &mut self,
        target: HaltTarget,
        halted: bool,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        let market = match target {
            HaltTarget::Market(name) => match self.market_id(&name) {
                Some(m) => Some(m),
                None => return Outcome::Rejected(RejectCode::UnknownMarket),
            },
            HaltTarget::User(u) => match username(&u) {
                Ok(()) => None,
                Err(code) => return Outcome::Rejected(code),
            },
            _ => None,
        };
        self.compliance.set_halt(target, market, halted);
        let kind = if halted {
            EventKind::Halted(target)
        } else {
            EventKind::Resumed(target)
        };
        Outcome::Done {
            seq: em.event(kind),
        }
    }
}
