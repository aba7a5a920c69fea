//! Broker ids in the replicated state, and the one place that knows Kafka's `-1`
//! for "no broker". Kafka's wire format and Chronik's stored snapshots and commands
//! write a partition without a leader as `-1`; in memory it is `None`, so that no
//! decision can mistake the sentinel for a broker or forget to check for it.

use serde::{Deserialize, Deserializer, Serializer};

pub type BrokerId = i32;

/// What Kafka's wire format and Chronik's stored format write for "no broker".
const NO_BROKER: i32 = -1;

/// The wire and stored form of an optional broker id.
pub fn to_wire(broker: Option<BrokerId>) -> i32 {
    broker.unwrap_or(NO_BROKER)
}

/// An optional broker id from its wire or stored form: any negative id is none, as
/// Kafka reads it.
pub fn from_wire(id: i32) -> Option<BrokerId> {
    (id >= 0).then_some(id)
}

/// Serde adapter (`#[serde(with = "...")]`) keeping the stored form `-1` for `None`,
/// so snapshots and commands written before and after the change read alike.
pub mod stored {
    use super::*;

    pub fn serialize<S: Serializer>(broker: &Option<BrokerId>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(to_wire(*broker))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BrokerId>, D::Error> {
        i32::deserialize(d).map(from_wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "stored")]
        leader: Option<BrokerId>,
    }

    #[test]
    fn no_leader_is_stored_as_kafkas_minus_one_and_read_back_as_none() {
        let none = Holder { leader: None };
        assert_eq!(
            serde_json::to_string(&none).ok().as_deref(),
            Some(r#"{"leader":-1}"#)
        );
        let some = Holder { leader: Some(3) };
        assert_eq!(
            serde_json::to_string(&some).ok().as_deref(),
            Some(r#"{"leader":3}"#)
        );
        let old: Holder = match serde_json::from_str(r#"{"leader":-1}"#) {
            Ok(h) => h,
            Err(e) => panic!("a stored -1 must read: {e}"),
        };
        assert_eq!(old, none);
    }
}
