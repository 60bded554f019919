//! A full disk: every write either is durable when it returns `Ok`, or
//! returns an error, changes nothing and leaves no temporary file.
//!
//! The child (this test binary run again) writes under a file-size limit of
//! 64 KiB, with records of 1 to 128 KiB, so about half the writes run out
//! of space part-way through their temporary file: see
//! `session_store_conformance::disk_full`.

use session_store_conformance::disk_full;
use session_store_file::FileStore;

const TEST: &str = "a_full_disk_fails_writes_and_loses_no_acknowledged_one";
const ENV_DIR: &str = "SESSION_STORE_FILE_DISK_FULL_DIR";

#[test]
fn a_full_disk_fails_writes_and_loses_no_acknowledged_one() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    if let Ok(dir) = std::env::var(ENV_DIR) {
        let store = FileStore::open(&dir).unwrap();
        rt.block_on(disk_full::write_until_full(&store, 1_000..=128_000));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sessions");
    let transcript = disk_full::run_under_file_size_limit(TEST, ENV_DIR, dir.to_str().unwrap(), 64);
    let store = FileStore::open(&dir).unwrap();
    let report = rt.block_on(disk_full::check_acknowledged(&store, &transcript));
    println!("disk full: {report:?}");
    // A failed write removed its temporary file itself.
    let mut temp_files = 0;
    for shard in std::fs::read_dir(&dir).unwrap() {
        let shard = shard.unwrap().path();
        if shard.is_dir() {
            for file in std::fs::read_dir(&shard).unwrap() {
                temp_files += usize::from(file.unwrap().file_name().to_string_lossy().starts_with(".tmp-"));
            }
        }
    }
    assert_eq!(temp_files, 0, "failed writes left temporary files");
}
