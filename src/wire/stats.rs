//! The `stats` and `state` answers: counters, latency stages and the state digest.

use crate::telemetry::StageSummary;

/// Counters and per-stage latency percentiles of a running daemon.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, bincode::Encode, bincode::Decode, serde::Deserialize,
)]
pub struct StatsReport {
    /// `(metric name, value)`, in a fixed order.
    pub counters: Vec<(String, u64)>,
    /// `(stage name, summary in ns)`, in pipeline order.
    pub latency: Vec<(String, StageSummary)>,
    /// The engine's state digest when it answered.
    pub state: StateDigest,
    /// The RabbitMQ bridge's state, if it runs (`amqp.enabled`).
    pub amqp: Option<crate::bus::amqp::BridgeHealth>,
}

/// A state digest and the command it was taken after: two daemons (or a daemon and a replay of
/// its journal) that processed the same commands have the same digest.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    bincode::Encode,
    bincode::Decode,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct StateDigest {
    /// The last command processed.
    pub cseq: u64,
    /// The digest, 16 lowercase hex digits.
    pub digest: String,
}

impl serde::Serialize for StatsReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Pairs<'a, T>(&'a [(String, T)]);
        impl<T: serde::Serialize> serde::Serialize for Pairs<'_, T> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(3 + usize::from(self.amqp.is_some())))?;
        m.serialize_entry("counters", &Pairs(&self.counters))?;
        m.serialize_entry("latency_ns", &Pairs(&self.latency))?;
        m.serialize_entry("state", &self.state)?;
        if let Some(a) = &self.amqp {
            m.serialize_entry("amqp", a)?;
        }
        m.end()
    }
}
