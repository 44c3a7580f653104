//! Finding `tally-hub` and `tally-agent`: next to the demo's own
//! executable (the same `target/<profile>/` directory), or in `--bin-dir`.
//!
//! `cargo run --release --bin tally-demo` only builds the demo's own
//! package, so when run by cargo (it sets `CARGO` in the environment) the
//! demo runs `cargo build --release -p tally-hub -p tally-agent` itself,
//! saying so — a no-op when they are up to date, and it keeps them from
//! being stale. This nesting is fine: cargo releases its build lock before
//! it runs the binary. Run directly, the demo only builds what is missing,
//! and only if it can find cargo and the workspace; otherwise it says how.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

/// The two binaries the demo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `tally-hub`.
    pub hub: PathBuf,
    /// `tally-agent`.
    pub agent: PathBuf,
}

/// Where the binaries are expected: `bin_dir`, else the directory of the
/// running executable (for a test executable in `target/<profile>/deps/`,
/// its parent).
pub fn default_dir(bin_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = bin_dir {
        return Ok(d.to_path_buf());
    }
    let exe = std::env::current_exe().context("finding the demo's own executable")?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(p) = dir.parent() {
            dir = p.to_path_buf();
        }
    }
    Ok(dir)
}

/// The cargo command that builds the binaries into `dir`
/// (`target/<profile>`): profile from the directory's name.
pub fn build_args(dir: &Path, manifest: &Path) -> Vec<String> {
    let mut args = vec!["build".to_string()];
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => args.push("--release".into()),
        Some(other) => args.extend(["--profile".into(), other.to_string()]),
    }
    args.extend(["-p", "tally-hub", "-p", "tally-agent"].map(String::from));
    args.push("--manifest-path".into());
    args.push(manifest.display().to_string());
    if let Some(target) = dir.parent() {
        args.push("--target-dir".into());
        args.push(target.display().to_string());
    }
    args
}

/// How to build them by hand, for messages.
pub fn how_to_build(dir: &Path) -> String {
    let release = if dir.file_name().is_some_and(|n| n == "release") {
        " --release"
    } else {
        ""
    };
    format!("cargo build{release} -p tally-hub -p tally-agent   (from the repository root)")
}

/// Variables `cargo run` sets for the program it runs, which a nested
/// cargo must not inherit.
pub fn inherited_from_cargo_run(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
        )
}

/// Finds (and if needed builds) the binaries. `build`: false for
/// `--no-build` (tests, scripts that built everything already).
pub fn locate(bin_dir: Option<&Path>, build: bool) -> anyhow::Result<Binaries> {
    let dir = default_dir(bin_dir)?;
    let bins = Binaries {
        hub: dir.join("tally-hub"),
        agent: dir.join("tally-agent"),
    };
    let present = bins.hub.is_file() && bins.agent.is_file();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let under_cargo = std::env::var_os("CARGO").is_some();
    let want_build = build && bin_dir.is_none() && (under_cargo || !present);
    if want_build && manifest.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let args = build_args(&dir, &manifest);
        println!(
            "tally-demo: building tally-hub and tally-agent: cargo {}",
            args.join(" ")
        );
        let mut cmd = std::process::Command::new(&cargo);
        cmd.args(&args);
        // `cargo run` describes the running package in the environment
        // (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, …). Build scripts such as
        // ring's rerun when those change, so passing them on would make
        // this build and the next `cargo run` rebuild each other's
        // dependencies every time.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(inherited_from_cargo_run) {
                cmd.env_remove(&key);
            }
        }
        let status = cmd.status().with_context(|| {
            format!(
                "running cargo to build tally-hub and tally-agent; build them yourself: {}",
                how_to_build(&dir)
            )
        })?;
        if !status.success() {
            return Err(anyhow!(
                "building tally-hub and tally-agent failed ({status}); try: {}",
                how_to_build(&dir)
            ));
        }
    }
    for p in [&bins.hub, &bins.agent] {
        if !p.is_file() {
            return Err(anyhow!(
                "{} is missing. tally-demo runs the tally-hub and tally-agent binaries next to it; build them with:\n    {}",
                p.display(),
                how_to_build(&dir)
            ));
        }
    }
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_command_matches_the_profile_directory() {
        let m = Path::new("/src/tally/Cargo.toml");
        assert_eq!(
            build_args(Path::new("/src/tally/target/release"), m).join(" "),
            "build --release -p tally-hub -p tally-agent --manifest-path /src/tally/Cargo.toml --target-dir /src/tally/target"
        );
        assert_eq!(
            build_args(Path::new("/t/debug"), m).join(" "),
            "build -p tally-hub -p tally-agent --manifest-path /src/tally/Cargo.toml --target-dir /t"
        );
        assert!(build_args(Path::new("/t/bench"), m)
            .join(" ")
            .starts_with("build --profile bench "));
        assert!(how_to_build(Path::new("/t/release")).contains("--release"));
        assert!(inherited_from_cargo_run("CARGO_PKG_NAME"));
        assert!(inherited_from_cargo_run("CARGO_MANIFEST_DIR"));
        assert!(!inherited_from_cargo_run("CARGO_HOME"));
        assert!(!inherited_from_cargo_run("CARGO_TARGET_DIR"));
    }
}
