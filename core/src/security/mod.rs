//! Who a connection is, as Kafka names it: the principal that authentication
//! (TLS client certificates, SASL) establishes and that authorization checks.

pub mod acl;
pub mod principal;

pub use principal::Principal;
