//! The conformance suite against a single Redis server
//! (`SESSION_STORE_REDIS_URL`, set by `store-redis/scripts/with-redis`).

mod common;

session_store_conformance::conformance_tests!(common::RedisHarness::from_env(false));

/// Every property again, with ids hashed and bodies encrypted at rest.
mod at_rest {
    session_store_conformance::conformance_tests!(session_store_conformance::AtRestHarness::new(
        super::common::RedisHarness::from_env(false)
    ));
}
