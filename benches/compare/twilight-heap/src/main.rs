//! twilight-gateway for the heap bench: `twilight-heap child twilight ...`
//! (see `src/heap.rs` of benches/compare).

#[path = "../../src/heap/alloc.rs"]
mod alloc;
#[path = "../../src/heap/child.rs"]
mod child;
#[path = "../../src/compression.rs"]
mod compression;
#[path = "../../src/heap/twilight.rs"]
mod twilight;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn main() {
    let mut args = std::env::args().skip(1);
    assert_eq!(args.next().as_deref(), Some("child"), "usage: twilight-heap child twilight --port P ...");
    let args = child::ChildArgs::parse(args);
    assert_eq!(args.kind, "twilight", "twilight-heap runs only the twilight client");
    twilight::run(&args);
}
