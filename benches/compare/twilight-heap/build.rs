//! As benches/compare/build.rs for its `heap` binary: count what C code
//! allocates with `malloc` (libzstd's decoder state) by wrapping it at link
//! time; see src/heap/alloc.rs of benches/compare.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(wrapped_malloc)");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for function in ["malloc", "calloc", "realloc", "free"] {
            println!("cargo::rustc-link-arg-bins=-Wl,--wrap={function}");
        }
        println!("cargo::rustc-cfg=wrapped_malloc");
    }
}
