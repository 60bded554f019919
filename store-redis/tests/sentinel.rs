//! Redis behind Sentinel: a private master, two replicas and three
//! sentinels (`redis-server --sentinel`) on free loopback ports. Visitors
//! count while the master is killed: the store follows the failover by
//! itself (no restart, no new store object), and the test measures how
//! long calls failed and how many acknowledged increments the promoted
//! replica lacked, without and with `wait_for_replicas` (which must lose
//! none).
//!
//! Starts its own servers with the binary in `SESSION_STORE_REDIS_SERVER`
//! (set by `store-redis/scripts/with-redis`).

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{KillOnDrop, free_port, start_server, wait_until_up};
use session_store_core::{Clock, Error, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_redis::RedisStore;

const MASTER: &str = "sessions";
const VISITORS: usize = 8;
/// How long the visitors count after the failover.
const AFTER: Duration = Duration::from_millis(1_500);
/// The most a failover may take here before the test gives up.
const PATIENCE: Duration = Duration::from_secs(40);

struct Deployment {
    master: KillOnDrop,
    _replicas: Vec<KillOnDrop>,
    _sentinels: Vec<KillOnDrop>,
    sentinel_urls: Vec<String>,
    _dir: tempfile::TempDir,
}

async fn deploy(binary: &str) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let master_port = free_port();
    let master = start_server(binary, master_port, dir.path());
    wait_until_up(master_port).await;
    let mut replicas = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let data = dir.path().join(format!("replica{i}"));
        std::fs::create_dir_all(&data).unwrap();
        replicas.push(KillOnDrop(
            common::server_command(binary, port, &data)
                .args(["--replicaof", "127.0.0.1", &master_port.to_string()])
                .spawn()
                .expect("start a replica"),
        ));
        wait_until_up(port).await;
    }
    let mut sentinels = Vec::new();
    let mut sentinel_urls = Vec::new();
    for i in 0..3 {
        let port = free_port();
        let conf = dir.path().join(format!("sentinel{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER} 500\nsentinel failover-timeout {MASTER} 2000\n\
                 sentinel parallel-syncs {MASTER} 2\n",
                dir.path().display()
            ),
        )
        .unwrap();
        sentinels.push(KillOnDrop(
            std::process::Command::new(binary)
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start a sentinel"),
        ));
        wait_until_up(port).await;
        sentinel_urls.push(format!("redis://127.0.0.1:{port}"));
    }
    // Every sentinel knows both replicas and the other sentinels (else no
    // failover can be agreed), and the replicas are in sync.
    let deadline = Instant::now() + PATIENCE;
    'ready: loop {
        assert!(Instant::now() < deadline, "the Sentinel deployment never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
        for url in &sentinel_urls {
            let mut c = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg(MASTER)
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            let peers: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("SENTINELS")
                .arg(MASTER)
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            if replicas.len() < 2 || peers.len() < 2 {
                continue 'ready;
            }
        }
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{master_port}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let info: String = redis::cmd("INFO").arg("replication").query_async(&mut c).await.unwrap();
        if info.contains("connected_slaves:2") && info.matches("state=online").count() == 2 {
            break;
        }
    }
    Deployment {
        master,
        _replicas: replicas,
        _sentinels: sentinels,
        sentinel_urls,
        _dir: dir,
    }
}

/// What the visitors saw.
#[derive(Debug, Default)]
struct Seen {
    /// Increments acknowledged before the kill, per visitor: the last value.
    acked_before: Vec<u64>,
    /// The first value each visitor loaded after the failover.
    first_after: Vec<u64>,
    /// From the kill to each visitor's first acknowledged write after it.
    failing: Vec<Duration>,
    /// Acknowledged writes after the failover.
    acked_after: u64,
    /// Median time of an acknowledged increment before the kill.
    median_write: Duration,
}

/// One increment of `id`'s counter: load, add one, write if unchanged.
async fn increment(store: &RedisStore, id: SessionId) -> Result<(u64, u64), Error> {
    let now = SystemClock.now();
    let loaded = store.load(&id).await?;
    let (mut record, before) = match loaded {
        Some(r) => {
            let n = r.data.get::<u64>("n").ok().flatten().unwrap_or(0);
            (r, n)
        }
        None => (
            Record::with_deadline(id, SessionData::new(), now, now + Duration::from_secs(600)),
            0,
        ),
    };
    record.data.insert("n", &(before + 1)).unwrap();
    if record.version == 0 {
        store.create(&record).await?;
    } else {
        store.save_if_version(&record).await?;
    }
    Ok((before, before + 1))
}

async fn count_through_a_failover(wait: bool) -> Option<Seen> {
    let binary = common::env_or_skip("SESSION_STORE_REDIS_SERVER")?;
    let mut deployment = deploy(&binary).await;
    let builder = if wait {
        RedisStore::sentinel_builder(deployment.sentinel_urls.clone(), MASTER)
            .wait_for_replicas(1, Duration::from_millis(200))
    } else {
        // The URL form, as the counter and the admin command take it.
        let hosts: Vec<&str> = deployment
            .sentinel_urls
            .iter()
            .map(|u| u.trim_start_matches("redis://"))
            .collect();
        RedisStore::builder(format!("redis+sentinel://{}/{MASTER}", hosts.join(",")))
    };
    let builder = builder
        .prefix(common::random_prefix())
        .timeout(Duration::from_millis(500));
    let store = Arc::new(builder.build().await.expect("a store through the sentinels"));
    assert!(format!("{store:?}").contains("sentinel"), "{store:?}");

    let killed_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..VISITORS {
        let (store, killed_at) = (Arc::clone(&store), Arc::clone(&killed_at));
        tasks.push(tokio::spawn(async move {
            let id = SessionId::random();
            let (mut last_acked, mut first_after, mut recovered, mut after) = (0, None, None, 0);
            let mut times = Vec::new();
            let started = Instant::now();
            loop {
                let killed = *killed_at.lock().unwrap();
                if let Some(at) = killed {
                    if recovered.is_some_and(|r: Duration| at.elapsed() > r + AFTER) || at.elapsed() > PATIENCE {
                        break;
                    }
                } else if started.elapsed() > PATIENCE {
                    break;
                }
                let t = Instant::now();
                match increment(&store, id).await {
                    Ok((before, now)) => match killed {
                        None => {
                            last_acked = now;
                            times.push(t.elapsed());
                        }
                        Some(at) => {
                            if recovered.is_none() {
                                recovered = Some(at.elapsed());
                                first_after = Some(before);
                            }
                            after += 1;
                        }
                    },
                    Err(e) => {
                        assert!(
                            e.is_transient(),
                            "a failover gives transient errors only: {}",
                            e.chain()
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (last_acked, first_after, recovered, after, times)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    deployment.master.0.kill().expect("kill the master");
    let _ = deployment.master.0.wait();
    *killed_at.lock().unwrap() = Some(Instant::now());

    let mut seen = Seen::default();
    let mut times = Vec::new();
    for task in tasks {
        let (last, first_after, recovered, after, t) = task.await.unwrap();
        seen.acked_before.push(last);
        seen.first_after
            .push(first_after.expect("every visitor counts again after the failover, on the same store object"));
        seen.failing.push(recovered.unwrap());
        seen.acked_after += after;
        times.extend(t);
    }
    times.sort();
    seen.median_write = times.get(times.len() / 2).copied().unwrap_or_default();
    Some(seen)
}

fn report(what: &str, seen: &Seen) -> u64 {
    let lost: u64 = seen
        .acked_before
        .iter()
        .zip(&seen.first_after)
        .map(|(acked, found)| acked.saturating_sub(*found))
        .sum();
    let acked: u64 = seen.acked_before.iter().sum();
    let longest = seen.failing.iter().max().copied().unwrap_or_default();
    let shortest = seen.failing.iter().min().copied().unwrap_or_default();
    eprintln!(
        "sentinel failover ({what}): calls failed for {:.2} to {:.2} s after the kill; {lost} of {acked} \
         acknowledged increments lost; {} acknowledged after; median increment before the kill {:?}",
        shortest.as_secs_f64(),
        longest.as_secs_f64(),
        seen.acked_after,
        seen.median_write
    );
    assert!(seen.acked_after > 0);
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_failover_and_asynchronous_replication_may_lose_acknowledged_writes() {
    let Some(seen) = count_through_a_failover(false).await else {
        return;
    };
    // Measured, not asserted: replication is asynchronous, so some
    // acknowledged increments may be lost (often none on loopback).
    report("asynchronous replication", &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_replica_loses_no_acknowledged_write_in_a_failover() {
    let Some(seen) = count_through_a_failover(true).await else {
        return;
    };
    let lost = report("wait_for_replicas(1)", &seen);
    assert_eq!(
        lost, 0,
        "a write a replica acknowledged survives the promotion: {seen:?}"
    );
}
