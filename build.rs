//! Builds the demo corpus: recur's own Rust sources and WGSL shaders, concatenated into
//! `$OUT_DIR/corpus.txt` (the `recur train` default data, shipped under the crate's license).
//! Paths are sorted so the corpus, and so a seeded training run, is the same on every machine.

use std::fs;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=shaders");
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    collect(Path::new("src"), "rs", &mut files);
    collect(Path::new("shaders"), "wgsl", &mut files);
    files.sort();
    let mut corpus = String::new();
    for f in &files {
        if let Ok(text) = fs::read_to_string(f) {
            let name = f.to_string_lossy().replace('\\', "/");
            corpus.push_str(&format!("// ---- {name} ----\n"));
            corpus.push_str(&text);
            if !text.ends_with('\n') {
                corpus.push('\n');
            }
            corpus.push('\n');
        }
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("corpus.txt"), corpus).expect("OUT_DIR is writable");
}
