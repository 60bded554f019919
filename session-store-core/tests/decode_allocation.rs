//! Decoding a crafted blob whose length prefixes claim huge sizes must be a
//! quick decode error that allocates no more than the blob's own size.
//!
//! This file holds a single test on purpose: it measures the process's peak
//! virtual memory (`VmPeak` in `/proc/self/status`, Linux), which another
//! test running alongside would disturb. An allocation is counted there as
//! soon as it is mapped, even if no page of it is ever touched, so a
//! zero-filled buffer of the claimed size shows up although the decoder
//! fails before writing to it.

use std::time::{Duration, Instant};

use session_store_core::{SessionId, Timestamp, raw::codec};

/// bincode 2's varint for `n` (the standard config the codec uses).
fn varint(n: u64) -> Vec<u8> {
    match n {
        0..=250 => vec![n as u8],
        251..=0xffff => [&[251u8][..], &(n as u16).to_le_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[252u8][..], &(n as u32).to_le_bytes()].concat(),
        _ => [&[253u8][..], &n.to_le_bytes()].concat(),
    }
}

/// The process's peak virtual memory so far, in bytes.
#[cfg(target_os = "linux")]
fn vm_peak() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmPeak:"))
        .expect("a VmPeak line");
    let kib: u64 = line
        .trim_start_matches("VmPeak:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmPeak in kB");
    kib * 1024
}

/// The crafted blobs: `(what, bytes)`. Each is a valid prefix (format
/// byte, created, deadline, version for a record) followed by a length
/// prefix claiming far more than the blob holds, then `pad` bytes of
/// content, so that the blob is large enough to get a generous limit.
fn crafted(pad: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let claims = [
        1u64 << 60,
        u64::MAX,
        1 << 40,
        1 << 36,
        // Just under the largest limit tier the codec had, and at 1 GiB.
        (1 << 36) - 1024,
        1 << 30,
        1 << 29,
        // A little more than the blob holds.
        pad as u64 + 1,
    ];
    for claim in claims {
        for (layout, format, header) in [
            ("record", codec::RECORD_V1, vec![0u8, 0, 0]),
            ("body", codec::BODY_V1, vec![0u8]),
        ] {
            // A map of one entry whose key claims `claim` bytes.
            let mut key = vec![format];
            key.extend(&header);
            key.extend(varint(1));
            key.extend(varint(claim));
            key.extend_from_slice(&vec![b'k'; pad]);
            out.push((format!("{layout}: key of {claim} bytes, {pad} present"), key));
            // A map of one entry whose value claims `claim` bytes.
            let mut value = vec![format];
            value.extend(&header);
            value.extend(varint(1));
            value.extend(varint(1));
            value.push(b'k');
            value.extend(varint(claim));
            value.extend_from_slice(&vec![b'v'; pad]);
            out.push((format!("{layout}: value of {claim} bytes, {pad} present"), value));
            // A map claiming `claim` entries, padded with bytes that are no
            // valid varint (255), so the decoder fails on the first entry
            // instead of decoding `pad / 2` empty ones.
            let mut map = vec![format];
            map.extend(&header);
            map.extend(varint(claim));
            map.extend_from_slice(&vec![255; pad]);
            out.push((format!("{layout}: map of {claim} entries, {pad} bytes"), map));
        }
    }
    out
}

#[test]
fn huge_claimed_lengths_are_quick_decode_errors_without_a_huge_allocation() {
    let id = SessionId::from_u128(0x5eed);
    // Blobs in the codec's limit tiers, up to the largest (over 16 MiB,
    // which a file store with the default record limit still reads).
    for pad in [0, 1_000, 1 << 20, (16 << 20) + 10] {
        for (what, bytes) in crafted(pad) {
            #[cfg(target_os = "linux")]
            let before = vm_peak();
            let start = Instant::now();
            let decoded = if bytes[0] == codec::RECORD_V1 {
                codec::decode_record(id, &bytes)
            } else {
                codec::decode_body(id, &bytes, Timestamp::MAX, 1)
            };
            let took = start.elapsed();
            let err = decoded.expect_err(&what);
            assert!(err.is_decode(), "{what}: {err}");
            assert!(took < Duration::from_secs(2), "{what}: took {took:?}");
            #[cfg(target_os = "linux")]
            {
                let grew = vm_peak().saturating_sub(before);
                // The blob itself is already allocated; decoding may copy
                // what it holds, and no more.
                let allowed = 2 * bytes.len() as u64 + (16 << 20);
                assert!(
                    grew <= allowed,
                    "{what}: decoding a {} byte blob raised the peak virtual memory by {grew} bytes",
                    bytes.len()
                );
            }
        }
    }
}
