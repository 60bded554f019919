//! The README's example is `tests/readme_harness.rs`, word for word: that
//! file runs the whole suite in CI, and this test keeps the README from
//! drifting away from it.

#[test]
fn the_readme_example_is_tests_readme_harness_rs() {
    let readme = include_str!("../README.md");
    let example = include_str!("readme_harness.rs");
    let block = format!("```rust\n{example}```\n");
    assert!(
        readme.contains(&block),
        "README.md must contain tests/readme_harness.rs verbatim as a ```rust block; \
         copy the file into the README (or the README's changes into the file)"
    );
}
