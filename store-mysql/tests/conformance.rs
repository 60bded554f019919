//! The conformance suite against MySQL or MariaDB (`SESSION_STORE_MYSQL_URL`,
//! set by `store-mysql/scripts/with-mariadb`). Each namespace is a table of
//! its own.

mod common;

session_store_conformance::conformance_tests!(common::MysqlHarness::from_env());

/// Every property again, with ids hashed and bodies encrypted at rest.
mod at_rest {
    session_store_conformance::conformance_tests!(session_store_conformance::AtRestHarness::new(
        super::common::MysqlHarness::from_env()
    ));
}
