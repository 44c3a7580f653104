//! Finds GS1's Barcode Syntax Dictionary for `gs1::dictionary` to embed.
//!
//! The dictionary is data GS1 maintains (`../shared/gs1/`, beside the
//! project); the crate parses it rather than carrying a copy of its
//! entries, so a new GS1 release is a file swap and a rebuild. Set
//! `TALLY_GS1_DICTIONARY` to build against another copy.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=TALLY_GS1_DICTIONARY");
    let path = match std::env::var_os("TALLY_GS1_DICTIONARY") {
        Some(path) => PathBuf::from(path),
        None => {
            let manifest =
                PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            manifest.join("../../shared/gs1/gs1-syntax-dictionary.txt")
        }
    };
    println!("cargo:rerun-if-changed={}", path.display());
    match path.canonicalize() {
        Ok(found) if found.is_file() => {
            println!(
                "cargo:rustc-env=TALLY_GS1_DICTIONARY_PATH={}",
                found.display()
            );
        }
        _ => {
            eprintln!(
                "GS1 Barcode Syntax Dictionary not found at {} (expected ../shared/gs1/ beside \
                 the project; set TALLY_GS1_DICTIONARY to its path)",
                path.display()
            );
            std::process::exit(1);
        }
    }
}
