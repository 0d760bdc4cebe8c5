//! Built with `SHOAL_SKIP_PRIVILEGED=1`, the tests that need root (they build network
//! namespaces) get the `skip_privileged` cfg and are reported as ignored, not passed.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SHOAL_SKIP_PRIVILEGED");
    println!("cargo::rustc-check-cfg=cfg(skip_privileged)");
    if std::env::var("SHOAL_SKIP_PRIVILEGED").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=skip_privileged");
    }
}
