//! Who a connection is, as Kafka names it, and how it proves it: the principal that
//! authentication (TLS client certificates, SASL) establishes and that authorization
//! checks; the SASL mechanisms and their stored credentials (spec/security.md).

pub mod acl;
pub mod peer_auth;
pub mod plain;
pub mod principal;
pub mod protocol;
pub mod sasl;
pub mod scram;

pub use principal::Principal;
pub use protocol::SecurityProtocol;
