//! The conformance suite against PostgreSQL (`SESSION_STORE_POSTGRES_URL`,
//! set by `store-postgres/scripts/with-postgres`). Each namespace is a
//! table of its own, or a schema of its own (see `common::Namespace`).

mod common;

session_store_conformance::conformance_tests!(common::PostgresHarness::from_env());

/// Every property again, with ids hashed and bodies encrypted at rest.
mod at_rest {
    session_store_conformance::conformance_tests!(session_store_conformance::AtRestHarness::new(
        super::common::PostgresHarness::from_env()
    ));
}
