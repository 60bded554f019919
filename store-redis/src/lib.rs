//! A Redis and Redis Cluster session store (redis-rs, tokio).
