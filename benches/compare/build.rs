//! The `heap` binary counts what C code allocates with `malloc` (libzstd's
//! decoder state) by wrapping it at link time; see src/heap/alloc.rs.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(wrapped_malloc)");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for function in ["malloc", "calloc", "realloc", "free"] {
            println!("cargo::rustc-link-arg-bin=heap=-Wl,--wrap={function}");
        }
        println!("cargo::rustc-cfg=wrapped_malloc");
    }
}
