//! A Discord gateway connection that never loses an event.
//!
//! This crate owns exactly one thing: the WebSocket connection to Discord's
//! gateway (API v10, JSON). It hands your application the raw opcode-0
//! dispatches (event name, sequence number and the untouched JSON bytes of
//! `d`) and keeps the connection alive through heartbeats, zombies,
//! reconnects, resumes, invalid sessions and every close code. It never
//! burns your identify budget, and it costs nearly nothing per message.
//!
//! **What it is not:** no REST client, no cache, no typed event model. Bring
//! your own (serde, twilight-model, anything): [`Dispatch::deserialize`] or
//! `serde_json::from_str(dispatch.data())`. Numbers this crate needs from
//! the REST API (`GET /gateway/bot`) you fetch yourself and pass in
//! ([`GatewayBot`]).
//!
//! This page is the guide; the repository's `README.md` is the short version,
//! and the sections below link to the reference of each piece.
//!
//! - [Quick start](#quick-start)
//! - [What the stream gives you](#what-the-stream-gives-you)
//! - [How it is built](#how-it-is-built)
//! - [Sharding](#sharding)
//! - [Errors](#errors)
//! - [Compression](#compression)
//! - [Security: what a hostile gateway can do](#security-what-a-hostile-gateway-can-do)
//! - [Testing your bot](#testing-your-bot)
//! - [Cargo features](#cargo-features)
//! - [Protocol notes](#protocol-notes)
//!
//! # Quick start
//!
//! ```no_run
//! use discord_gateway_stream::{event, CloseMode, Config, Intents, Shard};
//! use discord_gateway_stream::commands::{Presence, RequestGuildMembers};
//! use futures::StreamExt;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let token = std::env::var("DISCORD_TOKEN")?;
//! let config = Config::new(token, Intents::GUILDS | Intents::GUILD_MESSAGES)
//!     .presence(&Presence::online()); // base_url, shard, compression, … all optional
//! let mut shard = Shard::new(config)?;
//!
//! // Commands go through a cloneable handle; they are queued until
//! // READY/RESUMED, paced at 120/60 s with heartbeat slots reserved, and
//! // refused over 4096 bytes.
//! let handle = shard.handle();
//! handle.request_guild_members(&RequestGuildMembers::query(81384788765712384, "", 0))?;
//!
//! while let Some(item) = shard.next().await {
//!     let dispatch = item?; // Err only for a fatal close; then the stream ends
//!     match dispatch.event() {
//!         event::MESSAGE_CREATE => {
//!             let msg: serde_json::Value = dispatch.deserialize()?; // or your own type
//!             println!("#{} {}", dispatch.seq(), msg["content"]);
//!         }
//!         _ => {} // dispatch.data() is the raw `d`, byte for byte
//!     }
//! }
//!
//! // Deploying? Hand the session to the next process: it resumes, no Identify.
//! let session = shard.close(CloseMode::Resumable).await;
//! std::fs::write("session.json", serde_json::to_vec(&session)?)?;
//! // Next process: Config::new(token, intents).resume_from(serde_json::from_slice(&saved)?)
//! # Ok(()) }
//! ```
//!
//! [`Shard`] is a `futures::Stream<Item = Result<Dispatch, ShardError>>`
//! with a cloneable [`ShardHandle`] for commands (request guild members,
//! presence, voice state, soundboard sounds, channel info, raw: see
//! [`commands`]), [`Shard::close`] returning a serde [`Session`], a
//! spawnable driver for slow consumers, pluggable connectors
//! ([`transport`]) and a `tracing` span per shard. [`Config`] holds every
//! setting; [`Intents`] are bitflags with every documented intent.
//!
//! The repository's `examples/` run against the built-in simulator without a
//! token: `cargo run --example firehose` (one line per dispatch),
//! `cargo run --example sharded` (a [`ShardGroup`] with identify buckets, a
//! restart and a handover), `examples/typed.rs` (twilight-model types from
//! [`Dispatch::deserialize`]) and `examples/tokio.rs` (a tokio connector).
//! Against Discord:
//!
//! ```sh
//! DISCORD_TOKEN=... cargo run --example firehose -- --limit 100
//! cargo run --example firehose -- --url wss://gateway.discord.gg --token T \
//!     --intents 513 --shard 0/1 --compression zlib-stream --limit 0 --quiet
//! ```
//!
//! stdout carries only dispatch lines (`<shard> <seq> <EVENT> <bytes of d>`,
//! flushed per line); logs and a summary go to stderr. A fatal close (bad
//! token, disallowed intents, …) exits non-zero with a line naming the code
//! and the fix.
//!
//! # What the stream gives you
//!
//! - **Every event once, in order.** The stream yields opcode-0 dispatches
//!   only, READY and RESUMED included (unless [`Config::events`] leaves them
//!   out), in `s` order, each once: replays after a resume are deduplicated
//!   by `s`. Control traffic (Hello, heartbeats, op 7, op 9) never reaches
//!   the stream. An `Err` item is a [`ShardError`] for a shard that stopped
//!   for good (a fatal close such as a bad token); the stream then ends.
//! - **A [`Dispatch`]** owns its payload's one buffer (an exact-size copy of
//!   the decompressed payload or of a small text frame; a text frame of
//!   64 KiB or more is kept as the WebSocket frame's own bytes, no copy) with [`event()`](Dispatch::event),
//!   [`seq()`](Dispatch::seq), [`data()`](Dispatch::data) (the raw `d`),
//!   [`frame()`](Dispatch::frame), [`shard()`](Dispatch::shard) and
//!   [`deserialize::<T>()`](Dispatch::deserialize) (serde_json, or simd-json
//!   on a private copy with the `simd-json` feature). The names Discord
//!   documents are constants in [`event`].
//! - **Slow consumers.** By default the connection is driven while you poll
//!   the stream. If you may pause for long, spawn the driver:
//!   `tokio::spawn(shard.take_driver().unwrap())` (or any runtime's spawn;
//!   see [`Shard::take_driver`]). The driver keeps heartbeating; while its
//!   buffer is full (256 dispatches or 1 MiB of them,
//!   [`Config::max_buffered`]; one larger dispatch always passes) it stops
//!   reading the socket (TCP backpressure) and tells the protocol core, which
//!   then keeps sending heartbeats without taking the unread ACKs for a dead
//!   connection. If you do not spawn it and pause past the heartbeat window,
//!   Discord drops the connection and the shard resumes on the next poll:
//!   nothing lost, nothing duplicated. Tested with consumers that sleep 3 ×
//!   and 6 × the heartbeat interval, with 10 and 400 dispatches waiting.
//! - **Only the events you want.** `Config::events(["MESSAGE_CREATE"])`
//!   drops every other dispatch in the core before it is built (no copy, no
//!   queue slot); READY/RESUMED handling and sequence tracking are unchanged.
//! - **Payload validation.** By default a dispatch's `d` is located, not
//!   validated (your deserializer validates it anyway):
//!   Discord writes every payload as `{"t":…,"s":…,"op":…,"d":…}`, and the
//!   envelope reader checks that prefix and takes `d` as the rest of the
//!   object in tens of nanoseconds. [`Config::validate_payloads(true)`](Config::validate_payloads)
//!   validates every payload in full, for proxies that forward `d` unparsed;
//!   anything not in canonical form, control payloads and READY are always
//!   validated in full.
//! - **Close.** [`CloseMode::Final`] sends 1000 (session over, bot offline);
//!   [`CloseMode::Resumable`] sends 4000 and returns the [`Session`], which
//!   [`Config::resume_from`] resumes in the next process.
//! - **Runtimes.** No runtime is required: [`transport::DefaultConnector`]
//!   picks tokio's TCP inside a tokio runtime (feature `tokio`), else
//!   async-std's (feature `async-std`), else async-io's, which works under any
//!   executor; TLS is rustls (ring, no OpenSSL) with the roots the features
//!   choose, or your own `ClientConfig` ([`ShardBuilder::tls_config`]). See
//!   [`transport`] and `examples/tokio.rs`. Timers use `async-io`
//!   (runtime-agnostic: it drives its own reactor thread when no async-io
//!   executor runs).
//! - **The token** is redacted from every `Debug`/`Display`, error and log
//!   line (tested by capturing TRACE logs).
//!
//! # How it is built
//!
//! ```text
//!  socket bytes ──► driver (src/shard.rs) ──► codec ──► protocol core ──► Stream<Result<Dispatch, ShardError>>
//!                   src/transport.rs   ▲     src/codec/   src/protocol/         │
//!                                      └── frames to send, deadlines, Connect/Close actions ◄┘
//! ```
//!
//! Four layers, each tested alone:
//!
//! 1. **Protocol core** ([`protocol`], sans-IO): [`protocol::Machine`]
//!    performs no I/O and reads no clock. It makes every protocol decision:
//!    Hello and jittered heartbeats, ACK tracking and zombie detection,
//!    Identify or Resume, op 7 and op 9, every close code classified as
//!    resume, identify or fatal, backoff, the send rate limit, sequence
//!    dedupe across resumes, the identify-permit hook and persisted sessions.
//!    Randomness comes from a seeded generator ([`Config::rng_seed`]), so
//!    tests replay exactly. Its module page has the inputs and outputs, the
//!    driver contract, the close-code table and every default. Shaped after
//!    quinn-proto's `Connection`.
//! 2. **Codec** (internal, `src/codec/`): a zlib-stream inflater (one per
//!    connection, the sync marker detected across frame boundaries, a size
//!    cap against decompression bombs, a working buffer kept warm through a
//!    burst and given back after it), a zstd-stream decoder (feature `zstd`:
//!    one message per payload, truncated messages refused, size and window
//!    caps) and an allocation-free envelope reader that finds `op`, `s`, `t`
//!    and the byte span of `d` without building a JSON tree. The core owns
//!    the decompressor (rather than the driver, as the first design had it)
//!    because resetting it per connection and turning a corrupt stream into a
//!    resumable reconnect are protocol decisions that belong under the fake
//!    clock's tests. Its internals are reachable for fuzzing and benches
//!    through the `fuzzing` feature (not covered by semver).
//! 3. **Driver** ([`Shard`], [`ShardDriver`], [`transport`]): one loop that
//!    waits for whichever comes first (a socket message, the machine's
//!    deadline on an `async-io` timer, a command, a finished connect), feeds
//!    it to the machine and carries out the machine's outputs. Even the
//!    connect timeout is the machine's. Writes are polled through the
//!    WebSocket `Sink` in the same wake loop, so a socket that stops taking
//!    bytes cannot freeze timers, zombie detection or `close()`. Connectors
//!    return any `futures-io` stream; TLS is layered by the shard for
//!    `wss://`, and the WebSocket upgrade is the driver's own (a response
//!    header bounded to 16 KiB), tungstenite taking over for the frames.
//!    tungstenite's eager read buffer is cut from 128 KiB to 16 KiB
//!    per shard so idle shards stay small, and a large text frame leaves
//!    with its dispatch instead of growing that buffer for good; its message limit is the
//!    configured payload cap (`docs/connection.md#message-size`). Dispatches
//!    reach the stream through a ring bounded by count and by bytes (256 and
//!    1 MiB by default): a burst of megabyte GUILD_CREATEs cannot queue
//!    hundreds deep, and the ring a burst grew is given back once it drains.
//! 4. **Group** ([`ShardGroup`]): many shards, one fair stream, identify
//!    pacing through an [`IdentifyQueue`] ([`identify`]); see
//!    [Sharding](#sharding).
//!
//! # Sharding
//!
//! Bots in 2,500 guilds or more must shard (`docs/sharding.md#when-sharding-is-required`):
//! each shard is one gateway session carrying the guilds with
//! `(guild_id >> 22) % total == id` ([`shard_for_guild`], [`ShardId::for_guild`]).
//! Identifies are limited to one per `shard_id % max_concurrency` bucket per
//! 5 s and by a daily session-start budget whose exhaustion **resets the bot
//! token** (`docs/rate-limits.md`). Both numbers come from `GET /gateway/bot`:
//! deserialize its answer into [`GatewayBot`] and
//! [`GatewayBot::group_builder`] presets the shard count, the URL and the
//! identify queue.
//!
//! ```no_run
//! use discord_gateway_stream::identify::{IdentifyLimits, LocalIdentifyQueue, SessionStartLimit};
//! use discord_gateway_stream::{Config, Intents, ShardGroup};
//! use futures::StreamExt;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // `session_start_limit` from your REST client's GET /gateway/bot:
//! let limit = SessionStartLimit { total: 1000, remaining: 996, reset_after: 3_600_000, max_concurrency: 16 };
//! let queue = LocalIdentifyQueue::new(IdentifyLimits::from_session_start_limit(limit).reserve(10));
//! let config = Config::new(std::env::var("DISCORD_TOKEN")?, Intents::GUILDS | Intents::GUILD_MESSAGES);
//! let mut group = ShardGroup::builder(config, 64)
//!     .shards(16..32) // this process runs 16 of the 64 shards
//!     .identify_queue(queue)
//!     .build()?;
//! while let Some(item) = group.next().await {
//!     match item {
//!         Ok(dispatch) => println!("{} {} {}", dispatch.shard(), dispatch.seq(), dispatch.event()),
//!         Err(stopped) => eprintln!("{stopped}"), // one shard stopped (fatal close); the rest go on
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! - **One stream, fair**: dispatches of every shard, each tagged
//!   ([`Dispatch::shard`]). After each item a shard goes to the back of the
//!   line, so one busy shard cannot starve the others; merging allocates
//!   nothing per item (`futures`' `SelectAll` allocates a task per item).
//! - **Status and commands per shard**: [`ShardGroup::status`] /
//!   [`statuses`](ShardGroup::statuses) ([`Status`]: connecting, awaiting an
//!   identify permit, identifying, resuming, active, reconnecting with its
//!   delay and reason, closed, fatal with its code);
//!   [`ShardGroup::handle`] or [`handle_for_guild`](ShardGroup::handle_for_guild)
//!   sends commands.
//! - **Identify pacing**: every Identify waits for the group's
//!   [`IdentifyQueue`]; a Resume never does. [`LocalIdentifyQueue`] keeps one
//!   line per bucket and holds a bucket until READY (details in [`identify`]).
//!   At the budget's [`reserve`](IdentifyLimits::reserve) the queue fails the
//!   shard with `ShardError::Identify(IdentifyError::BudgetExhausted { reset_after, .. })`
//!   (default) or, with [`OnBudgetExhausted::WaitForReset`], holds it until
//!   the reset. Share one queue (clone it) between every group of the
//!   process; across processes use `RedisIdentifyQueue` (feature `redis`,
//!   see [`identify`]).
//! - **Connection pacing**: at most [`max_connecting`](ShardGroupBuilder::max_connecting)
//!   shards (default 8) open sockets at once; the rest wait their turn, so
//!   1,000 shards do not hit the network and the CPU in the same instant.
//! - **Failures stay local**: a fatal close (4004, 4010–4014) ends that shard
//!   with a [`GroupError`] `{ shard, error }`; its status stays readable and
//!   [`ShardGroup::restart`] starts it again. The stream ends only when no
//!   shard is left.
//! - **Add, restart, remove while running**: [`add(id)`](ShardGroup::add),
//!   [`add_range(total, range)`](ShardGroup::add_range),
//!   [`restart(id)`](ShardGroup::restart) (a running shard closes with 4000
//!   and resumes, no Identify), [`remove(id, mode)`](ShardGroup::remove),
//!   [`remove_total(total, mode)`](ShardGroup::remove_total). From other
//!   tasks, [`ShardGroup::controller`] gives a cloneable [`GroupController`]
//!   with `add`, `restart`, `remove`, `remove_total` and `shutdown`; the task
//!   that polls the stream carries them out (and keeps delivering dispatches
//!   meanwhile). All management calls run one at a time, in the order they
//!   were made, so two never act on the same shard at once.
//! - **Resharding without downtime** (`docs/sharding.md#several-totals-side-by-side`):
//!   start the new total beside the old one, wait until it is Active, then
//!   drain the old. During the overlap a guild's events arrive from both
//!   sets; filter by `dispatch.shard().total`.
//!
//!   ```ignore
//!   group.add_range(128, 0..128)?;                       // new total beside the old 64
//!   while group.active_count(Some(128)) < 128 { /* keep polling group.next() */ }
//!   group.remove_total(64, CloseMode::Final).await;      // the old set ends
//!   ```
//! - **Drivers**: connections are driven while the group is polled. If your
//!   consumer may pause for long,
//!   `.spawn_drivers(|driver| { tokio::spawn(driver); })`
//!   ([`ShardGroupBuilder::spawn_drivers`]) runs each shard's connection on
//!   your executor. Starting queued shards and carrying out controller
//!   requests still happen in the group's `poll_next`, so keep polling it.
//! - **Order per shard**: a restarted (or removed and re-added) shard's new
//!   connection waits, still driven, until the old one has yielded every
//!   dispatch it had received: one shard's dispatches stay in `s` order.
//!
//! ## Zero-downtime restart
//!
//! ```ignore
//! // Old process, on SIGTERM:
//! let sessions = group.shutdown().await;        // every shard closes with 4000, which keeps the session
//! while let Some(item) = group.next().await { /* handle the last dispatches it had received */ }
//! std::fs::write("sessions.json", serde_json::to_vec(&sessions)?)?;
//!
//! // New process:
//! let sessions: Vec<ShardSession> = serde_json::from_slice(&std::fs::read("sessions.json")?)?;
//! let mut group = ShardGroup::builder(config, 64).shards(16..32).identify_queue(queue).resume(sessions).build()?;
//! ```
//!
//! Every shard resumes (no Identify, no budget spent; see [`ShardSession`],
//! [`ShardGroupBuilder::resume`]) and Discord replays what was dispatched in
//! between; the new process gets each of those dispatches exactly once.
//! Sessions stay resumable for a few minutes only. `tests/shard_group.rs`
//! runs this end to end: four shards, dispatches before and during the
//! handover, the sessions serialized to JSON, and the new group checked for
//! zero Identifies, zero permits and every dispatch exactly once across the
//! two groups.
//!
//! ## Crash-safe sessions
//!
//! A process that crashes (panic, OOM kill, SIGKILL, a lost machine) never
//! gets to call `shutdown`. Give the shards a [`SessionStore`]
//! ([`store::MemorySessionStore`], [`store::FileSessionStore`], or
//! `store::RedisSessionStore` with the `redis` feature, or your own) and
//! they checkpoint their session as they run; the next process's shards load
//! it and resume instead of identifying:
//!
//! ```ignore
//! let group = ShardGroup::builder(config, 16)
//!     .session_store(FileSessionStore::new("/var/lib/my-bot/sessions")?)
//!     .checkpoint_interval(Duration::from_secs(2)) // the default
//!     .build()?;
//! ```
//!
//! - Saves never block the shard: at most one is in flight, at most one per
//!   interval and only when something changed, and a slow store coalesces to
//!   the newest state.
//! - A checkpoint never covers a dispatch your code has not handled (one
//!   counts as handled when you ask the stream for the next item). After a
//!   crash, delivery is **at least once from the checkpoint**, and exactly
//!   once if you deduplicate by `(shard, seq)`.
//! - A session the gateway refuses (op 9) is cleared and replaced by the new
//!   one; a session saved by a shard of another shard total is never used.
//! - `tests/session_store.rs` SIGKILLs a child process mid-stream and checks
//!   that its successor resumes every shard with zero Identifies and gets
//!   every dispatch after the checkpoint.
//!
//! ## 1,000 shards
//!
//! `cargo bench --bench group` starts a group of 1,000 shards
//! (max_concurrency 16) against the simulator with a 50 ms identify window:
//! all 1,000 READY in 1.085–1.090 × the minimum of 63 windows, with no
//! Identify rejected, and 77 KiB of heap per idle shard. The method and the
//! numbers are in the repository's `benches/README.md`.
//!
//! # Observability
//!
//! Everything the protocol core knows about a shard can be read from its
//! [`ShardHandle`] (or the [`Shard`]), from any task or thread, without a
//! round trip to the driver:
//!
//! - [`ShardHandle::stats`] → [`ShardStats`]: dispatches delivered,
//!   WebSocket messages, bytes received (on the wire and decompressed),
//!   reconnects, identifies, resumes, heartbeats sent and acknowledged,
//!   skipped payloads. The driver publishes them after every socket message,
//!   timer or request it handles, before the dispatches that came of it
//!   reach your stream; reading them is a few relaxed atomic loads.
//! - [`ShardHandle::latency`] → [`Latency`]: the last heartbeat round trip,
//!   the last five, their mean, and when the last heartbeat went out and was
//!   acknowledged; measured by the sans-IO core from the clock it is fed, and
//!   kept across reconnects.
//! - [`ShardHandle::session`] and [`ShardHandle::last_seq`]: the session a
//!   resume would use and the last `s` (`Session`'s `Debug` redacts the id).
//! - [`ShardHandle::watch_status`] → [`StatusWatcher`], a `Stream` of every
//!   status change in order that ends with the shard;
//!   [`ShardHandle::status_changed`] and [`ShardHandle::wait_for_status`] for
//!   one-off waits. No runtime dependency.
//!
//! [`ShardGroup::handles`], [`ShardGroup::stats`] and
//! [`ShardGroup::shard_stats`] give the same for every shard of a group.
//!
//! # Errors
//!
//! - [`ShardError`] is what a [`Shard`] stream yields before it ends: a
//!   [`FatalError`] (a close code reconnecting cannot fix, such as 4004 for a
//!   bad token or 4014 for disallowed intents, or a loop the shard stopped
//!   itself), a [`ConfigError`] (the configuration was rejected before
//!   connecting), a shard id out of range, no connector, `wss://` without TLS,
//!   or an [`IdentifyError`] (the identify queue refused the shard, e.g. the
//!   daily budget is exhausted). Each message says what to fix.
//! - [`GroupError`] is the same per shard in a [`ShardGroup`], tagged with
//!   the shard; the other shards go on. [`ControlError`] is a management call
//!   the group could not carry out (the shard already runs, there is no such
//!   shard, its configuration was rejected, the group is gone).
//! - [`CommandError`] is a command refused before it was queued (a core
//!   opcode, over 4096 bytes, `d` not valid JSON, a presence that is not a
//!   JSON object, the queue full, the shard closed); [`UrlError`] a gateway URL that cannot be used;
//!   [`DeserializeError`] a dispatch your type does not match.
//!
//! Transient trouble (dropped connections, op 7, op 9, resumable close codes,
//! corrupt compression, an oversized payload) is never an error: the shard
//! reconnects, resumes or identifies, and reports it through [`Status`] and
//! `tracing`.
//!
//! # Compression
//!
//! [`Config::compression`] picks the transport compression per shard at run
//! time: [`Compression::ZlibStream`] (the default), `Compression::ZstdStream`
//! (feature `zstd`) or [`Compression::None`]. zlib-stream stays the default
//! because an idle zstd-stream shard holds libzstd's 751 KB context against
//! zlib's 47.5 KB (733 MiB against 46 MiB for 1,000 shards) and zstd needs a
//! C compiler; zstd decodes 1.6–1.75× faster and its bytes on the wire are
//! 5–6 % fewer. So: zstd-stream for a few shards with heavy traffic where CPU
//! is the limit and a C toolchain is at hand; zlib-stream for many shards,
//! where memory per shard dominates; none on loopback or behind a proxy that
//! already compresses. The rules each follows, and what a failure does, are
//! in `docs/compression.md`.
//!
//! # Security: what a hostile gateway can do
//!
//! What a hostile or broken gateway (or a proxy in between) can and cannot
//! make a shard do:
//!
//! - **The token** goes only into Identify and Resume frames, never into a
//!   log line, `Debug` output or error. A Resume goes to the READY's
//!   `resume_gateway_url` only if it uses no weaker scheme than the base URL
//!   (never `ws://` after `wss://`) and, by default, is one of Discord's
//!   hosts (with a custom base URL: that URL's host;
//!   `Config::resume_hosts(ResumeHosts::Any)` for proxies, see
//!   [`ResumeHosts`]); otherwise the session resumes through the base URL.
//! - **Memory** per shard is bounded: one payload by
//!   [`max_message_size`](Config::max_message_size) (64 MiB by default, 64 KiB
//!   to 1 GiB; a zlib or zstd bomb stops at the cap and its partial output is
//!   freed at once; a zstd frame may not ask for a window over 8 MiB), the
//!   buffer towards the application by [`Config::max_buffered`] (256
//!   dispatches and 1 MiB by default, plus one payload); while it is full the
//!   socket is not read.
//! - **Protocol violations** never leave a shard that looks healthy but is
//!   not: READY or RESUMED answering nothing we sent, an unusable Hello,
//!   corrupt compression or an oversized payload end the connection with a
//!   logged reason and a resume; a dispatch before our Identify or Resume is
//!   skipped and never moves the resume point.
//! - **Identify coordination**: a local bucket is held until READY for at
//!   most [`IdentifyLimits::max_hold`] (60 s plus the spacing by default;
//!   raise it with [`IdentifyLimits::with_max_hold`] if you raise
//!   [`Config::ready_timeout`]), so a shard whose driver stopped being polled
//!   cannot block its bucket forever; windows, margins and `reset_after` are
//!   capped at a day, so no setting or REST answer can overflow the
//!   schedule's clock arithmetic.
//! - **Loops** are bounded: a Hello under
//!   [`min_heartbeat_interval`](Config::min_heartbeat_interval) (10 s) is
//!   refused and no connection sends more than 120 frames per 60 s; a payload
//!   refused again and again at the same point (over `max_message_size`, or
//!   broken compression) stops the shard after 8 failures in a row or before
//!   a third Identify, with an error naming the size and
//!   `Config::max_message_size`; a shard never identifies more than
//!   [`max_identifies_per_day`](Config::max_identifies_per_day) (50) times in
//!   24 h. Unreadable payloads are skipped, logged at warn and counted
//!   ([`Shard::skipped_payloads`]).
//! - **A server that stops reading** cannot make a shard buffer without
//!   limit: the driver holds at most 16 frames or 32 KiB for the socket;
//!   everything else waits in the protocol core, where commands count against
//!   [`max_queued_commands`](Config::max_queued_commands) (see
//!   [`ShardHandle::queued_commands`]). Commands not yet written when a
//!   connection drops are sent after the reconnect, once and in order; a
//!   frame already handed to the socket may be lost with it, as with any TCP
//!   write. The default connector turns on TCP keepalive (probes after 60 s
//!   of silence, every 10 s), the backstop for a half-open connection; custom
//!   connectors should do the same (see `examples/tokio.rs`).
//! - **Commands** are checked before they are queued: core opcodes are
//!   refused, frames over 4096 bytes too, and a presence update must be a
//!   JSON object (the last one is sent again in every Identify).
//!
//! The crate itself is `#![forbid(unsafe_code)]`. How this is tested (a chaos
//! soak of 1,000 random faults and hostile inputs, property tests, fuzzing, an
//! interop run against discord.js) is in the repository's `tests/README.md`
//! and `fuzz/README.md`.
//!
//! # Testing your bot
//!
//! The `testing` feature adds `discord_gateway_stream::testing`: a scripted
//! fake gateway on `127.0.0.1` over real WebSockets, with persistent sessions
//! and replay on resume, op 7, op 9, any close code, both compressions,
//! corrupt frames, identify validation and rate limits, and a record of every
//! frame the client sent. Its module page has a runnable example.
//!
//! # Cargo features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `zlib` | yes | `compress=zlib-stream` through zlib-rs (pure Rust, its safe API) |
//! | `zstd` | no | `compress=zstd-stream` through libzstd (`zstd-safe`); needs a C compiler |
//! | `rustls-webpki-roots` | yes | `wss://` through rustls (ring) with Mozilla's roots compiled in |
//! | `rustls-native-roots` | no | the operating system's root certificates instead |
//! | `rustls-platform-verifier` | no | the platform's certificate verifier instead |
//! | `rustls` | with the above | the TLS engine alone (no roots: give [`ShardBuilder::tls_config`]) |
//! | `tokio` | no | [`transport::TokioConnector`], used automatically inside a tokio runtime |
//! | `async-std` | no | [`transport::AsyncStdConnector`], used outside tokio when enabled |
//! | `simd-json` | no | [`Dispatch::deserialize`] parses with simd-json (on a private copy) |
//! | `testing` | no | `discord_gateway_stream::testing::Simulator`, the fake gateway |
//! | `redis` | no | `identify::RedisIdentifyQueue`: buckets and daily budget shared through Redis |
//! | `fuzzing` | no | `discord_gateway_stream::fuzzing`: internals for fuzz targets and benches; not covered by semver |
//!
//! Without `rustls`, `wss://` URLs are refused up
//! front ([`TlsError::Unavailable`](transport::TlsError::Unavailable)).
//!
//! # Protocol notes
//!
//! Every decision about Discord's protocol is written down, with links to
//! Discord's documentation, in the repository's `docs/` folder; code comments
//! cite it as `docs/<file>.md#<section>`:
//!
//! - `docs/connection.md`: URLs, the payload envelope, opcodes, Hello,
//!   heartbeating and zombies, Identify/READY, Resume/RESUMED, op 7, op 9,
//!   which of resume or identify follows each disconnect, reconnect pacing,
//!   the per-shard state machine.
//! - `docs/close-codes.md`: every close code and what the crate does after it.
//! - `docs/rate-limits.md`: the send limit and heartbeat reserve, identify
//!   buckets, the daily session-start budget.
//! - `docs/sharding.md`: which shard gets a guild's events; several shard
//!   totals side by side.
//! - `docs/intents.md` and `docs/compression.md`.
//! - `docs/edge-cases.md`: situations that have broken other clients, each
//!   with the crate's answer and the tests that pin it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
pub mod commands;
mod dispatch;
mod error;
pub mod event;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gateway_bot;
mod group;
pub mod identify;
mod intents;
mod observe;
pub mod protocol;
mod queue;
mod session;
mod shard;
mod shard_id;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

pub use dispatch::{DeserializeError, Dispatch};
pub use error::ShardError;
pub use group::{shard_for_guild, ControlError, GroupController, GroupError, ShardGroup, ShardGroupBuilder};
pub use identify::{IdentifyQueue, LocalIdentifyQueue};
pub use intents::Intents;
pub use observe::StatusWatcher;
pub use protocol::{CloseMode, Compression, Config, Latency, ShardStats};
pub use session::{Session, ShardSession};
pub use shard::{Shard, ShardBuilder, ShardDriver, ShardHandle};
pub use shard_id::ShardId;

// Every name the public signatures of the types above use, reachable from
// the crate root.
pub use commands::{
    Activity, ActivityType, OnlineStatus, Presence, RequestChannelInfo, RequestGuildMembers, RequestSoundboardSounds,
    VoiceStateUpdate,
};
pub use gateway_bot::GatewayBot;
pub use identify::{IdentifyError, IdentifyLimits, IdentifyPermit, OnBudgetExhausted, SessionStartLimit};
pub use protocol::{
    Command, CommandError, ConfigError, DisconnectReason, FatalError, IdentifyProperties, ReconnectPolicy, ResumeHosts,
    Status, UrlError,
};
pub use store::{SessionStore, SessionStoreError};
pub use transport::{AsyncStream, BoxedStream, ConnectFuture, Connector, Target};
