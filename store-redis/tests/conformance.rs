//! The conformance suite against a single Redis server
//! (`SESSION_STORE_REDIS_URL`, set by `store-redis/scripts/with-redis`).

mod common;

session_store_conformance::conformance_tests!(common::RedisHarness::from_env(false));
