//! The store contract against a single Redis server
//! (`SESSION_STORE_REDIS_URL`) and against a three-master Redis Cluster
//! (`SESSION_STORE_REDIS_CLUSTER_URLS`).

mod common;

macro_rules! contract_list {
    ($target:expr) => {
        crate::contract_tests!($target;
            round_trip_of_awkward_data,
            create_never_overwrites_a_live_record,
            liveness_follows_the_injected_clock,
            save_bumps_versions,
            save_if_version_is_a_compare_and_set,
            touch_moves_only_the_deadline,
            rotate_moves_the_record,
            purge_count_ids_clear,
            namespaces_are_isolated,
            too_large_is_refused_and_nothing_written,
            garbage_is_a_decode_error_for_that_record_only,
            the_ttl_follows_the_deadline_plus_grace,
            reopen_and_share,
            concurrent_conditional_saves_lose_nothing,
        );
    };
}

mod single {
    use super::common::{self, Target};
    contract_list!(Target::single());
    crate::contract_tests!(Target::single(); a_silent_server_times_out);
}

mod cluster {
    use super::common::{self, Target};
    contract_list!(Target::cluster());
}
