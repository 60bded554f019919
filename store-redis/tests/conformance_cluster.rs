//! The conformance suite against a three-master Redis Cluster
//! (`SESSION_STORE_REDIS_CLUSTER_URLS`, set by `store-redis/scripts/with-redis`).

mod common;

session_store_conformance::conformance_tests!(common::RedisHarness::from_env(true));

/// Every property again, with ids hashed and bodies encrypted at rest.
mod at_rest {
    session_store_conformance::conformance_tests!(session_store_conformance::AtRestHarness::new(
        super::common::RedisHarness::from_env(true)
    ));
}
