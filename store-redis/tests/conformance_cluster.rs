//! The conformance suite against a three-master Redis Cluster
//! (`SESSION_STORE_REDIS_CLUSTER_URLS`, set by `store-redis/scripts/with-redis`).

mod common;

session_store_conformance::conformance_tests!(common::RedisHarness::from_env(true));
