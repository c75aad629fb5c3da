//! Records the compiler that built `ditto` (`DITTO_RUSTC`), for the machine
//! description in benchmark records.

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DITTO_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
