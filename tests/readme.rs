//! The README's library section is `examples/readme.rs`, which runs as a doctest of the crate
//! root: this test keeps the two equal, so the README shows code that runs.

use std::path::Path;

/// The first ```rust block after `heading` in `text`.
fn rust_block_after<'a>(text: &'a str, heading: &str) -> Option<&'a str> {
    let rest = &text[text.find(heading)? + heading.len()..];
    let start = rest.find("```rust\n")? + "```rust\n".len();
    let body = &rest[start..];
    Some(&body[..body.find("\n```")?])
}

#[test]
fn the_readme_library_block_is_examples_readme_rs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/readme.rs")).unwrap();
    let block = rust_block_after(&readme, "## As a library")
        .expect("README.md has a ```rust block under '## As a library'");
    assert_eq!(
        block.trim_end(),
        example.trim_end(),
        "README.md's library block differs from examples/readme.rs: copy the file into the \
         block (the file is what runs, as a doctest of src/lib.rs)"
    );
}

#[test]
fn the_crate_docs_include_examples_readme_rs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("include_str!(\"../examples/readme.rs\")"),
        "src/lib.rs no longer runs examples/readme.rs as a doctest"
    );
}
