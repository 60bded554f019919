//! A quick latency probe (criterion benchmarks live in the `benches` crate):
//! median time of a load, a save, a conditional save and a create against
//! the server at `SESSION_STORE_REDIS_URL` (or the cluster at
//! `SESSION_STORE_REDIS_CLUSTER_URLS` with `--cluster`).
//!
//! ```sh
//! store-redis/scripts/with-redis cargo run --release -p session-store-redis --example latency
//! ```

use std::time::{Duration, Instant};

use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_redis::RedisStore;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = std::env::args().any(|a| a == "--cluster");
    let builder = if cluster {
        let urls = std::env::var("SESSION_STORE_REDIS_CLUSTER_URLS")?;
        RedisStore::cluster_builder(urls.split(',').map(str::to_owned).collect::<Vec<_>>())
    } else {
        RedisStore::builder(std::env::var("SESSION_STORE_REDIS_URL")?)
    };
    let store = builder
        .prefix(format!("latency:{}:", SessionId::random()))
        .build()
        .await?;
    // About 198 bytes in 5 keys, like the records of the benches (benches/README.md).
    let mut data = SessionData::new();
    data.insert("user_id", &123_456_789u64)?;
    data.insert("name", &"Alice Example-Person")?;
    data.insert("roles", &["admin", "editor", "viewer"])?;
    data.insert("csrf", &"q2Xv9bL0mZ8kR4tY7wE1uI3oP6aS5dF0gH2jK4lZ9xC")?;
    data.insert("cart", &[(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)])?;
    println!("record data: {} bytes, {} keys", data.byte_size(), data.len());
    let n = 3_000;
    let mut records = Vec::new();
    let mut creates = Vec::new();
    for _ in 0..n {
        let now = SystemClock.now();
        let r = Record::with_deadline(SessionId::random(), data.clone(), now, now + Duration::from_secs(600));
        let t = Instant::now();
        store.create(&r).await?;
        creates.push(t.elapsed());
        records.push(r);
    }
    let (mut loads, mut misses, mut saves, mut cas) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let floor_url = std::env::var("SESSION_STORE_REDIS_URL")?;
    let mut floor = redis::Client::open(floor_url)?
        .get_multiplexed_async_connection()
        .await?;
    let blob = session_store_core::raw::codec::encode_record(&records[0])?;
    let (mut gets, mut sets) = (Vec::new(), Vec::new());
    for r in &records {
        if !cluster {
            // The floor, interleaved: plain GET / SET … PX of the same bytes
            // on one multiplexed connection.
            let key = format!("latency-floor:{}", r.id);
            let t = Instant::now();
            let () = redis::cmd("SET")
                .arg(&key)
                .arg(&blob)
                .arg("PX")
                .arg(600_000)
                .query_async(&mut floor)
                .await?;
            sets.push(t.elapsed());
            let t = Instant::now();
            let _: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut floor).await?;
            gets.push(t.elapsed());
            let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut floor).await?;
        }
        let t = Instant::now();
        let loaded = store.load(&r.id).await?.expect("live");
        loads.push(t.elapsed());
        let t = Instant::now();
        store.load(&SessionId::random()).await?;
        misses.push(t.elapsed());
        let t = Instant::now();
        store.save(r).await?;
        saves.push(t.elapsed());
        let mut next = loaded;
        next.version += 1;
        let t = Instant::now();
        store.save_if_version(&next).await?;
        cas.push(t.elapsed());
    }
    println!(
        "{} medians over {n}: load hit {:?}, load miss {:?}, save {:?}, save_if_version {:?}, create {:?}",
        if cluster { "cluster" } else { "single" },
        median(loads),
        median(misses),
        median(saves),
        median(cas),
        median(creates)
    );
    if !cluster {
        println!(
            "floor (redis-rs GET / SET PX, interleaved): get {:?}, set {:?}",
            median(gets),
            median(sets)
        );
    }
    // 32 tasks, 90% loads / 10% saves.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32usize {
        let (store, records) = (store.clone(), records.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..1_000usize {
                let r = &records[(t * 1_000 + i) % records.len()];
                if i % 10 == 0 {
                    store.save(r).await.unwrap();
                } else {
                    store.load(&r.id).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    println!(
        "32-task mix (90% load, 10% save): {:.0} ops/s",
        32_000.0 / start.elapsed().as_secs_f64()
    );
    store.clear().await?;
    Ok(())
}
